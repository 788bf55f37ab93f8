"""Every architecture spandrel ships, built small with random weights, exported by gan_pack and
compared with spandrel's torch forward: the table of docs/families.md.

    python benchmarks/spandrel_archs.py [--only ESRGAN,Compact] [--json out.json] [--timeout 600]

Each architecture runs in its own process (a crash or a hang is that architecture's result). Prints
one Markdown row per architecture: exported with parity (max abs difference at the two sizes, and
the exporter) or the one line that says why not.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

A = "spandrel.architectures"
# architecture id -> (module, class, small keyword arguments)
BUILDS: dict[str, list[tuple[str, str, dict]]] = {
    "Compact": [("Compact", "Compact", dict(num_feat=16, num_conv=4))],
    "SwiftSRGAN": [("SwiftSRGAN", "SwiftSRGAN", dict(num_channels=16, num_blocks=2))],
    "HAT": [("HAT", "HAT", dict(embed_dim=24, depths=(2,), num_heads=(2,), window_size=8, squeeze_factor=8,
                                upscale=2, upsampler="pixelshuffle"))],
    "GRL": [("GRL", "GRL", dict(embed_dim=16, depths=[1, 1], num_heads_window=[1, 1], num_heads_stripe=[1, 1],
                                upscale=2, upsampler="pixelshuffle"))],
    "Swin2SR": [("Swin2SR", "Swin2SR", dict(embed_dim=16, depths=[2], num_heads=[2], window_size=8, upscale=2,
                                            upsampler="pixelshuffle"))],
    "SwinIR": [("SwinIR", "SwinIR", dict(embed_dim=16, depths=[2], num_heads=[2], window_size=8, upscale=2,
                                         upsampler="pixelshuffle"))],
    "GFPGAN": [("GFPGAN", "GFPGAN", dict())],
    "RestoreFormer": [("RestoreFormer", "RestoreFormer", dict())],
    "LaMa": [("LaMa", "LaMa", dict())],
    "OmniSR": [("OmniSR", "OmniSR", dict(num_feat=16, block_num=1, res_num=1, up_scale=2))],
    "SCUNet": [("SCUNet", "SCUNet", dict(config=[1] * 7, dim=32))],
    "FBCNN": [("FBCNN", "FBCNN", dict(nb=2))],
    "Uformer": [("Uformer", "Uformer", dict(embed_dim=16, depths=[1] * 9, img_size=128))],
    "RGT": [("RGT", "RGT", dict(embed_dim=24, depth=[1], num_heads=[2], upscale=2))],
    "DAT": [("DAT", "DAT", dict(embed_dim=24, depth=[1], num_heads=[2], upscale=2))],
    "CRAFT": [("CRAFT", "CRAFT", dict(embed_dim=24, depths=[1], num_heads=[2], upscale=2))],
    "KBNet": [("KBNet", "KBNet_s", dict(width=16, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1],
                                        dec_blk_nums=[1, 1, 1, 1]))],
    "DITN": [("DITN", "DITN", dict(dim=24, ITL_blocks=1, SAL_blocks=1, UFONE_blocks=1, upscale=2))],
    "MMRealSR": [("MMRealSR", "MMRealSR", dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1,
                                               num_grow_ch=8))],
    "SPAN": [("SPAN", "SPAN", dict(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2))],
    "RealCUGAN": [("RealCUGAN", "UpCunet2x", dict()), ("RealCUGAN", "UpCunet4x", dict())],
    "SAFMN": [("SAFMN", "SAFMN", dict(dim=16, n_blocks=2, upscaling_factor=2))],
    "SAFMNBCIE": [("SAFMNBCIE", "SAFMNBCIE", dict(dim=16, n_blocks=1, num_layers=1))],
    "DCTLSA": [("DCTLSA", "DCTLSA", dict(nf=20, num_modules=1, upscale=2))],
    "FFTformer": [("FFTformer", "FFTformer", dict(dim=16, num_blocks=[1, 1, 1], num_refinement_blocks=1))],
    "NAFNet": [("NAFNet", "NAFNet", dict(width=16, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]))],
    "ATD": [("ATD", "ATD", dict(depths=(2,), num_heads=(2,)))],
    "MixDehazeNet": [("MixDehazeNet", "MixDehazeNet", dict(embed_dims=[8, 16, 32, 16, 8], depths=[1, 1, 1, 1, 1]))],
    "DRUNet": [("DRUNet", "DRUNet", dict(nb=2))],
    "DnCNN": [("DnCNN", "DnCNN", dict(in_nc=3, out_nc=3, nc=16, nb=4))],
    "IPT": [("IPT", "IPT", dict())],
    "DRCT": [("DRCT", "DRCT", dict(embed_dim=24, depths=(1,), num_heads=(2,), upscale=2, upsampler="pixelshuffle",
                                   window_size=8))],
    "ESRGAN": [("ESRGAN", "ESRGAN", dict(num_filters=16, num_blocks=2, scale=4)),
               ("ESRGAN", "ESRGAN", dict(in_nc=12, num_filters=16, num_blocks=2, scale=4, shuffle_factor=2)),
               ("ESRGAN", "ESRGAN", dict(in_nc=48, num_filters=16, num_blocks=2, scale=4, shuffle_factor=4))],
    "PLKSR": [("PLKSR", "PLKSR", dict(dim=16, n_blocks=2, upscaling_factor=2)),
              ("PLKSR", "RealPLKSR", dict(dim=16, n_blocks=2, upscaling_factor=2))],
    "RetinexFormer": [("RetinexFormer", "RetinexFormer", dict(n_feat=16, stage=1, num_blocks=[1, 1, 1]))],
    "HVICIDNet": [("HVICIDNet", "HVICIDNet", dict(channels=[8, 8, 16, 32]))],
    "SeemoRe": [("SeemoRe", "SeemoRe", dict(embedding_dim=16, num_layers=2, num_experts=2, scale=2))],
    "MoSR": [("MoSR", "MoSR", dict(n_block=2, dim=16, upscale=2))],
    "MoESR": [("MoESR", "MoESR", dict(dim=16, n_blocks=1, n_block=1, upsample_dim=16, scale=2))],
    "RCAN": [("RCAN", "RCAN", dict(n_resgroups=1, n_resblocks=2, n_feats=16, scale=2))],
    "FDAT": [("FDAT", "FDAT", dict(embed_dim=24, num_groups=1, depth_per_group=1, num_heads=2, scale=2))],
    "AuraSR": [("AuraSR", "AuraSR", dict(dim=16, image_size=64, input_image_size=16,
                                         style_network=dict(dim_in=32, dim_out=128, depth=2)))],
}


def build_state(module: str, cls: str, kwargs: dict) -> dict:
    import torch

    torch.manual_seed(0)
    arch = getattr(importlib.import_module(f"{A}.{module}"), cls)
    return arch(**kwargs).state_dict()


def one(arch: str, index: int) -> dict:
    """Export one build of one architecture; the result as a dict (run in a child process)."""
    from gan_pack.pytorch import image_models
    from gan_pack.pytorch.image_export import write_image_model
    from gan_pack.pytorch.image_models import exportable_spandrel

    image_models.REFUSED.clear()            # measure what the refusal list says, rather than refuse it

    module, cls, kwargs = BUILDS[arch][index]
    started = time.perf_counter()
    try:
        state = build_state(module, cls, kwargs)
    except Exception as e:
        return {"arch": arch, "build": cls, "ok": None, "why": f"cannot build a small {cls}: {type(e).__name__}: {e}"}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            exportable = exportable_spandrel(state, f"{cls}.pth")
            report = write_image_model(exportable, Path(scratch) / "model.onnx", allow_mismatch=True)
            from gan_pack.runtime.onnxscan import model_metadata

            meta = model_metadata(Path(scratch) / "model.onnx")
        except Exception as e:
            return {"arch": arch, "build": cls, "ok": False, "why": " ".join(f"{type(e).__name__}: {e}".split())[:400],
                    "seconds": time.perf_counter() - started}
    return {"arch": arch, "build": cls, "ok": report.ok, "max_abs": max(b.max_abs for b in report.batches),
            "sizes": [[b.batch, b.height, b.width] for b in report.batches], "exporter": meta.get("exporter"),
            "spec": json.loads(meta["gan_pack.spec"]), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], int(args.child[1]))))
        return
    archs = [a for a in BUILDS if not args.only or a in args.only.split(",")]
    results = []
    for arch in archs:
        for index in range(len(BUILDS[arch])):
            try:
                done = subprocess.run([sys.executable, __file__, "--child", arch, str(index)], capture_output=True,
                                      text=True, timeout=args.timeout)
                lines = done.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if done.returncode == 0 and lines else \
                    {"arch": arch, "build": BUILDS[arch][index][1], "ok": False,
                     "why": f"the process died ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}"}
            except subprocess.TimeoutExpired:
                result = {"arch": arch, "build": BUILDS[arch][index][1], "ok": False,
                          "why": f"export did not finish in {args.timeout} s"}
            results.append(result)
            figure = f"max abs {result['max_abs']:.2e} ({result['exporter']})" if "max_abs" in result else result["why"]
            print(f"| {arch} | {result['build']} | {'yes' if result['ok'] else 'no'} | {figure} |", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
