"""``python -m serve_batch`` runs ``rec-score`` (handy where the script is not installed)."""

from serve_batch.cli import main

if __name__ == "__main__":
    main()
