"""`make bench`: how fast an ITS becomes usable and how that scales, measured on the sandbox, each
figure next to a baseline taken in the same run. Benchmarks report; they never fail a build."""
