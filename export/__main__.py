"""``python -m movierec.export`` runs ``rec-export`` (where the script is not on PATH)."""

from movierec.export.cli import main

if __name__ == "__main__":
    main()
