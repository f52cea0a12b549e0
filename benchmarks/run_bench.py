"""Run the RBM CPU benchmark from the repository root (same as ``ebmfast bench``).

    python benchmarks/run_bench.py                      # all sizes, 15 repeats
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/run_bench.py --threads 1

Options: python benchmarks/run_bench.py --help. Results go to benchmarks/results/.
"""
import sys

from ebmfast.bench import main

if __name__ == "__main__":
    sys.exit(main())
