"""Make the bundled demo catalog from clothing-small: N photos per class, downsized, with a CSV.

    python scripts/make_demo_catalog.py --source ../shared/data/clothing-small/train --out demo

Deterministic: the same source and seed give the same catalog.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

from PIL import Image

PRICE_RANGES = {  # euros, a plausible range per category
    "dress": (29, 119),
    "hat": (9, 39),
    "longsleeve": (15, 49),
    "outwear": (49, 249),
    "pants": (25, 89),
    "shirt": (19, 69),
    "shoes": (39, 159),
    "shorts": (15, 45),
    "skirt": (19, 79),
    "t-shirt": (9, 35),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="../shared/data/clothing-small/train")
    parser.add_argument("--out", default="demo")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    source, out = Path(args.source), Path(args.out)
    rng = random.Random(args.seed)
    images_dir = out / "catalog"
    shutil.rmtree(images_dir, ignore_errors=True)
    rows = []
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        category = class_dir.name
        photos = sorted(class_dir.glob("*.jpg"))
        low, high = PRICE_RANGES.get(category, (10, 100))
        for n, photo in enumerate(sorted(rng.sample(photos, min(args.per_class, len(photos)))), 1):
            sku = f"{category.upper().replace('-', '')}-{n:03d}"
            target = images_dir / category / f"{sku}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(photo) as image:
                image = image.convert("RGB")
                image.thumbnail((args.max_side, args.max_side), Image.Resampling.LANCZOS)
                image.save(target, quality=85, optimize=True)
            title = f"{category.replace('-', ' ').capitalize()} no. {n}"
            price = round(rng.uniform(low, high)) - 0.01
            rows.append(
                {
                    "sku": sku,
                    "title": title,
                    "category": category,
                    "price": f"{price:.2f}",
                    "image_path": target.relative_to(out).as_posix(),
                    "source_file": photo.name,
                }
            )
    with (out / "catalog.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} products to {out / 'catalog.csv'}")


if __name__ == "__main__":
    main()
