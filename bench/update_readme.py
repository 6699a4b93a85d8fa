#!/usr/bin/env python3
"""Puts the latest seed-benchmark summary into README.md, between the lines
<!-- seed-bench:begin --> and <!-- seed-bench:end --> (section "Latest results").

    python3 bench/update_readme.py                    # newest folder under bench/results/
    python3 bench/update_readme.py bench/results/2026-11-27-h100-80gb-hbm3
    python3 bench/update_readme.py --check            # exit 1 if README.md is not up to date

"Newest" is the folder whose results.json has the latest meta.timestamp. The block is the
folder's summary.md under a line linking the folder (tables, JSON, charts). No PyTorch needed.
"""
import argparse
import json
import os
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BEGIN = "<!-- seed-bench:begin -->"
END = "<!-- seed-bench:end -->"


def splice(text, block):
    """text with everything between the BEGIN and END lines replaced by block."""
    b, e = text.find(BEGIN), text.find(END)
    if b < 0 or e < 0 or e < b:
        raise ValueError(f"README has no '{BEGIN}' ... '{END}' pair")
    return text[:b + len(BEGIN)] + "\n" + block.strip("\n") + "\n" + text[e:]


def latest(root):
    best = None
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        try:
            with open(os.path.join(path, "results.json")) as f:
                stamp = json.load(f)["meta"].get("timestamp", "")
        except (OSError, ValueError, KeyError):
            continue
        if os.path.exists(os.path.join(path, "summary.md")) and (best is None or stamp >= best[0]):
            best = (stamp, path)
    return best[1] if best else None


def block_for(folder, readme_dir):
    rel = os.path.relpath(folder, readme_dir).replace(os.sep, "/")
    with open(os.path.join(folder, "summary.md")) as f:
        summary = f.read().strip()
    charts = [c for c in ("core.png", "layer.png") if os.path.exists(os.path.join(folder, c))]
    links = ", ".join(f"[{c}]({rel}/{c})" for c in charts)
    head = (f"From [`{rel}/`]({rel}/): `tables.md` has the seed's tables (ms per backend with "
            f"TFLOP/s and % of peak, forward / backward / total), `results.json` every number"
            + (f", and the charts are {links}" if links else "") + ".")
    head = textwrap.fill(head, 100, break_long_words=False, break_on_hyphens=False)
    return head + "\n\n" + summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", help="a results folder (default: the newest)")
    ap.add_argument("--readme", default=os.path.join(REPO, "README.md"))
    ap.add_argument("--check", action="store_true", help="only say whether README is current")
    args = ap.parse_args(argv)
    folder = args.folder or latest(os.path.join(HERE, "results"))
    if not folder:
        print("update_readme: no results folder with results.json and summary.md under "
              "bench/results/", file=sys.stderr)
        return 2
    with open(args.readme) as f:
        text = f.read()
    new = splice(text, block_for(folder, os.path.dirname(os.path.abspath(args.readme))))
    if args.check:
        print("README.md is up to date" if new == text else f"README.md differs from {folder}")
        return 0 if new == text else 1
    if new != text:
        with open(args.readme, "w") as f:
            f.write(new)
    print(f"README.md: latest results from {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
