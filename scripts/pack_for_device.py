"""Pack an image-folder dataset into two files that can travel to a GPU machine (and unpack it).

    python scripts/pack_for_device.py pack ../shared/data/cifar10-jpeg .device_data --test 1000
    python scripts/pack_for_device.py unpack .device_data /tmp/data      # on the GPU machine

The JPEG bytes are concatenated into one .bin with an index of offsets and relative paths, so
50,000 training images travel as one ~46 MB file instead of 50,000 small ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def pack(source: Path, dest: Path, train: int | None, test: int | None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    paths, chunks, offsets = [], [], [0]
    for split, limit in (("train", train), ("test", test)):
        for cls in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            files = sorted(cls.iterdir())
            per_class = None if limit is None else limit // 10
            for f in files[:per_class]:
                data = f.read_bytes()
                paths.append(str(f.relative_to(source)))
                chunks.append(data)
                offsets.append(offsets[-1] + len(data))
    (dest / f"{source.name}.bin").write_bytes(b"".join(chunks))
    np.savez(dest / f"{source.name}-index.npz", offsets=np.array(offsets, dtype=np.int64), paths=np.array(paths))
    print(f"packed {len(paths)} files ({offsets[-1] / 2**20:.1f} MiB) from {source} into {dest}")


def unpack(packed: Path, dest: Path) -> None:
    for index_file in packed.glob("*-index.npz"):
        name = index_file.name[: -len("-index.npz")]
        blob = (packed / f"{name}.bin").read_bytes()
        index = np.load(index_file)
        offsets, paths = index["offsets"], index["paths"]
        for i, rel in enumerate(paths):
            target = dest / name / str(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob[offsets[i]:offsets[i + 1]])
        print(f"unpacked {len(paths)} files into {dest / name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--train", type=int, default=None, help="training images to keep (balanced; default all)")
    p.add_argument("--test", type=int, default=1000, help="test images to keep (balanced)")
    u = sub.add_parser("unpack")
    u.add_argument("packed", type=Path)
    u.add_argument("dest", type=Path)
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.source, args.dest, args.train, args.test)
    else:
        unpack(args.packed, args.dest)


if __name__ == "__main__":
    main()
