#!/usr/bin/env bash
# Unpack the xz-compressed IDX files carried in .dx/ (the device tool's size limit) into .data/.
python3 - <<'PY'
import lzma, pathlib
for src in pathlib.Path(".dx").glob("*/*.xz"):
    dst = pathlib.Path(".data") / src.parent.name / src.stem
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(lzma.decompress(src.read_bytes()))
        print("unpacked", dst)
PY
