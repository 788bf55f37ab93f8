"""The sampling commands, sample and interpolate (torch-free)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.cli.text import PSI_HELP, TRUNCATION_HELP, VARIANT_HELP, ModelPath, note_variant, progress
from gan_pack.contract.choices import Device, Format
from gan_pack.core.files import check_room
from gan_pack.errors import GanPackError


def output_format(output: Path | None, fmt: Format | None) -> Format:
    """The format of -o: its extension decides; --format, if given, must agree with it."""
    if output is None:
        return fmt or Format.png
    by_suffix = {".png": Format.png, ".npy": Format.npy}.get(output.suffix.lower())
    if by_suffix is None:
        raise GanPackError(f"-o {output} must end in .png (a grid) or .npy (an array)")
    if fmt is not None and fmt is not by_suffix:
        raise GanPackError(f"--format {fmt.value} does not match -o {output}; drop --format or end -o in .{fmt.value}")
    return by_suffix


def sample(
    ctx: typer.Context,
    model: ModelPath,
    n: Annotated[int, typer.Option("-n", "--num", help="How many images.")] = 64,
    label: Annotated[Optional[str], typer.Option(help="cGAN: one class for all images, by index (3) or name "
                                                      "(smileys-emotion).")] = None,
    labels: Annotated[Optional[str], typer.Option(help="cGAN: classes like 0,1,2 (or names), repeated to fill "
                                                       "-n.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="cGAN: K images of every class, one row each.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed (0..2**32-1): image k is the same for a seed everywhere.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(
        help="One image per seed, e.g. 0-99 or 1,5,9 (image 0 of each): grid captions or file names say it.")] = None,
    truncation: Annotated[Optional[float], typer.Option(help=TRUNCATION_HELP)] = None,
    psi: Annotated[Optional[float], typer.Option(help=PSI_HELP)] = None,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    variant: Annotated[Optional[str], typer.Option(help=VARIANT_HELP)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Images per onnxruntime call (default: what fits 8 MiB of activations, at most 1024).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads (1..cores).")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="One file: a grid (.png) or an array (.npy), by its extension.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        help="One file per image here, streaming; over 1000 images, in subfolders of 1000.")] = None,
    fmt: Annotated[Optional[Format], typer.Option("--format", help="png or npy (default: from -o, else png).")] \
        = None,
    nrow: Annotated[Optional[int], typer.Option(help="Images per grid row.")] = None,
) -> None:
    """Sample an exported generator with onnxruntime (no torch).

    Examples: ganpack sample exported/mnist-cgan/ --per-class 10 -o samples.png;
    ganpack sample exported/mnist-cgan/ --seeds 0-19 --label 3 -o threes.png;
    ganpack sample exported/mnist-gan/ -n 100000 --out-dir samples/ --format npy
    """
    from gan_pack.core.files import check_output_path
    from gan_pack.core.noise import parse_seeds
    from gan_pack.runtime.generator import OnnxGenerator
    from gan_pack.runtime.labels import LabelRequest

    check_flags(n, output, out_dir, nrow, seeds, per_class, seed, truncation)
    given = [flag for flag, name in (("-n", "n"), ("--seed", "seed")) if on_command_line(ctx, name)]
    if seeds is not None and given:
        raise GanPackError(f"--seeds gives one image per seed: drop {' and '.join(given)}")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    fmt = output_format(output, fmt) if out_dir is None else (fmt or Format.png)
    if out_dir is not None:
        check_output_path(out_dir, folder=True)
    else:
        output = check_output_path(output or Path(f"samples.{fmt.value}"), f".{fmt.value}")
    generator = OnnxGenerator(model, device=device.value, threads=threads, batch_size=batch_size, variant=variant,
                              psi=psi)
    note_variant(generator)
    request = LabelRequest.parse(generator.info.num_classes, len(seed_list) if seed_list else n, label, labels,
                                 per_class, generator.info.class_names)
    if seed_list is not None:
        write_seeds(generator, seed_list, request, truncation, output, out_dir, fmt, nrow)
    elif out_dir is not None:
        write_files(generator, request, seed, truncation, out_dir, fmt)
    else:
        assert output is not None
        write_one_file(generator, request, seed, truncation, output, fmt, nrow)


def on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


MAX_NROW = 10_000              # images in one row of a grid


def check_flags(n: int, output: Path | None, out_dir: Path | None, nrow: int | None, seeds: str | None,
                per_class: int | None, seed: int, truncation: float | None) -> None:
    """The flags that can be checked before the model is loaded."""
    from gan_pack.core.noise import check_truncation_option
    from gan_pack.runtime.labels import MAX_IMAGES, check_seed

    if not 1 <= n <= MAX_IMAGES:
        raise GanPackError(f"-n must be in 1..{MAX_IMAGES}, not {n}")
    if output is not None and out_dir is not None:
        raise GanPackError("give either -o (one file) or --out-dir (one file per image), not both")
    if nrow is not None and not 1 <= nrow <= MAX_NROW:
        raise GanPackError(f"--nrow must be in 1..{MAX_NROW}, not {nrow}")
    if seeds is not None and per_class is not None:
        raise GanPackError("--seeds gives one image per seed: use --label or --labels with it, not --per-class")
    check_seed(seed, "--seed")
    check_truncation_option(truncation, "--truncation")


def write_one_file(generator, request, seed: int, truncation: float | None, output: Path, fmt: Format,
                   nrow: int | None) -> None:
    """-o: a grid, or an .npy streamed batch by batch (the array is never whole in memory)."""
    from gan_pack.core import images as imaging

    if fmt is Format.npy:
        check_room(output, request.n * generator.image_values * 4)
        batches = generator.iter_batches(request.n, request.labels, seed, truncation=truncation)
        imaging.save_npy_batches(output, (request.n, *generator.info.image_shape), (b for _, b in batches))
    else:
        images = generator.sample(request.n, request.labels, seed, truncation=truncation)
        imaging.save_grid(output, images, nrow or request.columns)
    typer.echo(f"wrote {output} ({request.n} images, seed {seed})")


def write_files(generator, request, seed: int, truncation: float | None, out_dir: Path, fmt: Format) -> None:
    """One file per image, streamed; a folder this command made is removed again if it stays empty."""
    from gan_pack.core import images as imaging

    created = not out_dir.exists()
    try:
        with progress(request.n, "images") as advance:
            for start, batch in generator.iter_batches(request.n, request.labels, seed, truncation=truncation):
                imaging.save_each(out_dir, batch, start, fmt.value, sharded=request.n > imaging.SHARD_SIZE)
                advance(len(batch))
    except BaseException:
        if created:
            remove_empty_folders(out_dir)        # the images already written stay
        raise
    layout = f" in subfolders of {imaging.SHARD_SIZE}" if request.n > imaging.SHARD_SIZE else ""
    typer.echo(f"wrote {request.n} {fmt.value} files to {out_dir}/{layout}")


def seed_batches(generator, seeds: list[int], labels, truncation: float | None):
    """(start, images) of image 0 of each seed, a batch of the generator's size at a time."""
    import numpy as np

    all_labels = generator.resolve_labels(len(seeds), labels)
    for start in range(0, len(seeds), generator.batch_size):
        chunk = seeds[start:start + generator.batch_size]
        noise = np.concatenate([generator.noise(1, s, truncation=truncation) for s in chunk])
        yield start, generator.generate(noise, None if all_labels is None else all_labels[start:start + len(chunk)])


def write_seeds(generator, seeds: list[int], request, truncation, output, out_dir, fmt: Format, nrow) -> None:
    """--seeds: image 0 of each seed, in a captioned grid, an array, or files named seedNNNN; run in
    the generator's batches like -n, so any number of seeds takes the memory of one batch."""
    import numpy as np

    from gan_pack.core import images as imaging

    batches = seed_batches(generator, seeds, request.labels, truncation)
    if out_dir is not None:
        for start, images in batches:
            for s, image in zip(seeds[start:], images):
                path = out_dir / f"seed{s:04d}.{fmt.value}"
                if fmt is Format.npy:
                    imaging.save_npy(path, image)
                else:
                    imaging.save_png(path, imaging.to_uint8(image[None])[0])
        typer.echo(f"wrote {len(seeds)} {fmt.value} files to {out_dir}/ (seedNNNN.{fmt.value})")
    elif fmt is Format.npy:
        check_room(output, len(seeds) * generator.image_values * 4)
        imaging.save_npy_batches(output, (len(seeds), *generator.info.image_shape), (b for _, b in batches))
        typer.echo(f"wrote {output} ({len(seeds)} images, seeds in the order given)")
    else:
        generator.check_one_array(len(seeds))
        images = np.concatenate([b for _, b in batches])
        imaging.save_png(output, imaging.captioned_grid(images, [str(s) for s in seeds], nrow or 10))
        typer.echo(f"wrote {output} ({len(seeds)} images, each captioned with its seed)")


def remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True) + [root]:
        with contextlib.suppress(OSError):
            folder.rmdir()                           # only succeeds when empty


def interpolate(
    model: ModelPath,
    steps: Annotated[int, typer.Option(help="Images along the walk, ends included.")] = 10,
    label: Annotated[Optional[str], typer.Option(help="cGAN: walk in this class, by index or name (default: one "
                                                      "row per class).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the points (images 0, 1, ... of the seed).")] = 0,
    truncation: Annotated[Optional[float], typer.Option(help=TRUNCATION_HELP)] = None,
    psi: Annotated[Optional[float], typer.Option(help=PSI_HELP)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG strip to write.")] = None,
    gif: Annotated[Optional[Path], typer.Option(help="Write a looping animated GIF instead.")] = None,
    points: Annotated[int, typer.Option(help="--gif: random points the loop passes through.")] = 4,
    frames: Annotated[int, typer.Option(help="--gif: frames in the whole loop.")] = 60,
    fps: Annotated[int, typer.Option(help="--gif: frames per second.")] = 20,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    variant: Annotated[Optional[str], typer.Option(help=VARIANT_HELP)] = None,
) -> None:
    """A spherical interpolation (slerp) in the noise space: a strip between two points, or with
    --gif a looping animation through several, one panel per class of a cGAN.

    Examples: ganpack interpolate exported/mnist-cgan/ --steps 10 --label 3 -o walk.png;
    ganpack interpolate exported/mnist-cgan/ --gif walk.gif --points 4 --frames 60 --fps 20
    """
    from gan_pack.core.files import check_output_path
    from gan_pack.core.images import save_grid
    from gan_pack.core.noise import check_truncation_option
    from gan_pack.runtime.generator import OnnxGenerator
    from gan_pack.runtime.labels import check_seed, class_index
    from gan_pack.runtime.walk import latent_walk

    check_seed(seed, "--seed")
    check_truncation_option(truncation, "--truncation")
    if gif is not None:
        from gan_pack.runtime.walk import loop_noise, save_gif, walk_frames

        if output is not None:
            raise GanPackError("give either -o (a PNG strip) or --gif (an animation), not both")
        check_output_path(gif, ".gif")
        generator = OnnxGenerator(model, device=device.value, variant=variant, psi=psi)
        note_variant(generator)
        walk_label = None if label is None else class_index(label, generator.info.class_names, "--label")
        pictures = walk_frames(generator, loop_noise(generator, points, frames, seed, truncation), walk_label)
        save_gif(gif, pictures, fps)
        typer.echo(f"wrote {gif} ({frames} frames through {points} points at {fps} fps, seed {seed})")
        return
    output = output or Path("walk.png")
    check_output_path(output, ".png")
    generator = OnnxGenerator(model, device=device.value, variant=variant, psi=psi)
    note_variant(generator)
    row_label = None if label is None else class_index(label, generator.info.class_names, "--label")
    noise, row_labels, rows = latent_walk(generator, steps, row_label, seed, truncation)
    generator.check_one_array(len(noise))
    save_grid(output, generator.generate_in_batches(noise, row_labels), nrow=steps)
    typer.echo(f"wrote {output} ({rows} row(s) of {steps} steps, seed {seed})")
