"""``python -m xnorfault`` runs the command line."""

from xnorfault.cli import main

if __name__ == "__main__":
    main()
