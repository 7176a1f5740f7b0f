"""`make kernels`: `python -m videopoet.kernels` builds the oneDNN library.

Prints its path (and g++'s warnings, if any); exits 0 without the `kernels`
extra (nothing to build), 1 where the build or its loading failed.
"""

import sys

from videopoet.kernels import dnnl_conv3d

if __name__ == "__main__":
  sys.exit(dnnl_conv3d.main())
