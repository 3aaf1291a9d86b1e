"""fabops benchmarks: every figure is printed next to a baseline measured
side by side in the same run. Nothing here is asserted by the tests."""
