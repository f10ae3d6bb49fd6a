"""``python -m movierec.serve_batch`` runs ``rec-score`` (where the script is not on PATH)."""

from movierec.serve_batch.cli import main

if __name__ == "__main__":
    main()
