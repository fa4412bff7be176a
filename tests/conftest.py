"""The tests run in the process the CLI sets up (charrnn/setup.py), configured
before any test module imports numpy or numba."""
from charrnn import setup

setup.configure()
