"""``python -m movierec.nightly`` runs ``rec-nightly`` (where the script is not on PATH)."""

from movierec.nightly.cli import main

if __name__ == "__main__":
    main()
