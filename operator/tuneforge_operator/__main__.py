"""`python -m tuneforge_operator`: run the operator with settings from the environment."""

from tuneforge_operator.app import run

if __name__ == "__main__":
    run()
