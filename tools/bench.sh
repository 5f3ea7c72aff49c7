#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The benchmark command: build whatever is missing, run the benchmarks in one
# guest boot (tools/guest/bench.sh), keep their figures in build/bench.json
# and print them as a table. Exits non-zero if the run failed, not for a
# figure that misses its target: a benchmark is not a test.
#
# Usage: bench.sh [--table]
#   --table: only print the table of the last run's build/bench.json
# RMTTY_BENCH_ARGS, if set, goes to the benchmark program (rmtty_bench).
# The guest gets 4 GiB of memory, as the tests' guest: migrating a 256 MiB
# device needs five times that at once (the device's memory, the loaded copy,
# rmtty-migrate's buffer, the stream's file, memcpy()'s buffers), and the
# test kernel's KASAN adds its shadow.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

json=$RMTTY_BUILD/bench.json

if [ "${1:-}" != --table ]; then
	"$RMTTY_TOP"/tools/build.sh
	kernel_paths
	rm -f "$json"
	run_guest "RMTTY_BENCH_ARGS=$(sh_quote "${RMTTY_BENCH_ARGS:-}") $(sh_quote "$RMTTY_TOP/tools/guest/bench.sh")" ||
		die "the benchmark run failed"
	cp "$RMTTY_GUEST_OUT/bench.json" "$json"
fi
[ -e "$json" ] || die "$json does not exist: run make bench"

python3 - "$json" <<'PY'
import json, sys

b = json.load(open(sys.argv[1]))
p = b["parameters"]
print(f"\nrmtty benchmarks, {b['kernel']}, {b['cpus']} CPUs ({sys.argv[1]}): medians of "
      f"{p['repetitions']} repetitions\n({p.get('migration_repetitions', p['repetitions'])} "
      f"for the migration, pre-copy and QEMU figures); ratio: the median of rmtty / baseline "
      f"over the repetitions,\nspread: its (max - min) / median")
row = "{:<52} {:>9} {:>9} {:<17} {:<9} {:>6} {:>10} {:<4} {:>6}"
print(row.format("figure", "rmtty", "baseline", "(baseline)", "unit", "ratio", "target",
                 "", "spread"))

def num(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"

verdicts = []
for f in b["figures"]:
    r, s, q = f["rmtty"], f["baseline"], f["ratio"]
    verdicts.append(f["verdict"])
    print(row.format(f["what"], num(r["median"]), num(s["median"]), s["label"], f["unit"],
                     f"{q['median']:.3f}", f["target"] or "-", f["verdict"],
                     f"{q['spread_pct']:.0f}%"))
    if "passes" in f:
        # The pre-copy passes of the repetition with the median stop-copy
        i = sorted(range(len(r["samples"])), key=lambda i: r["samples"][i])[len(r["samples"]) // 2]
        passes = " ".join(str(p) for p in f["passes"][i])
        print(f"    passes (bytes): {passes}, stop-copy {r['samples'][i]:.0f}"
              f"{'' if f['converged'][i] else ' (did not converge)'}; "
              f"{f['dirtied_pages'][i]} pages dirtied")
print(f"{verdicts.count('pass')} pass, {verdicts.count('miss')} miss of the "
      f"{len(verdicts) - verdicts.count('-')} figures with a target")
PY
