"""Command line entry point: `qc-worker`."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qc-worker")
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
