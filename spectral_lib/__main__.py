"""``python -m spectral_lib train | sample | evaluate | standin`` (see :mod:`spectral_lib.cli`)."""

from spectral_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
