"""``python -m movierec.train`` runs ``rec-train`` (where the script is not on PATH)."""

from movierec.train.cli import main

if __name__ == "__main__":
    main()
