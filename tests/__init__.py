# charrnn first: it sets up numba (kernel_cache.py) and BLAS (one thread) before they load,
# as its CLI does
import charrnn  # noqa: F401
