/* Empty: the module exists for include/mip6_bench.h. */
