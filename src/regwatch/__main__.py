"""`python -m regwatch` is the same as the `regwatch` console script."""

from regwatch.cli.main import main

if __name__ == "__main__":
    main()
