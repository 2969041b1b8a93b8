"""``python -m linq_router``: the command line."""

from linq_router.cli import main

if __name__ == "__main__":
    main()
