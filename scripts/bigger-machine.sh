#!/usr/bin/env bash
# Runs the performance suite on a (bigger) machine from prebuilt release binaries, with
# the core plan as a parameter, and writes every result into one folder:
#
#   machine/      lscpu, nproc, uname, isolated and nohz_full cores, kernel command line,
#                 clock source, governor, NUMA layout, allowed cores, binary checksums
#   plan.env      the core plan and sizes this run used
#   configs/      the shipped configs with [cores] rewritten to the plan (what ran)
#   transport.*   `lab bench transport` (table .txt, JSON .json, progress .log)
#   jitter.*      `lab bench jitter` on the engine's hot core
#   run/          `lab run` on the default config (summary.json, engine.hlog, logs)
#   compare/      `lab compare` on the default matrix (report.md, plots, runs)
#   steps.txt     each step's command and exit status
#
# No Rust toolchain is needed on the target machine: only bash, coreutils and awk.
#
# Pack the binaries on the build machine (from the repository root):
#   cargo build --release
#   CARGO_TARGET_DIR=target/peers cargo build --release -p lab --features peers   # optional
#   scripts/bigger-machine.sh --pack /tmp/hft-bench     # binaries, configs, this script
# Copy the folder over, then on the target machine:
#   TX_CORE=2 RX_CORE=3 RX2_CORE=4 FEED_MD_CORE=2 ENGINE_HOT_CORE=3 COLD_CORES=8,9,10,11 \
#     /tmp/hft-bench/bigger-machine.sh --bin /tmp/hft-bench --out results-$(hostname)
#
# Every setting is an environment variable or the flag of the same name in lower case
# with dashes (TX_CORE or --tx-core 2). Run with --help for the list.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bigger-machine.sh --bin DIR [--out DIR] [settings] [--skip STEP]... [--dry-run]
       bigger-machine.sh --pack DIR

  --bin DIR            folder with lab, feed, engine and their variants (feed-system,
                       engine-jemalloc, ...); lab-peers (lab built with --features peers)
                       is used for the transport benchmark when present
  --configs DIR        shipped configs [default: BIN/configs, else the repository's configs/]
  --out DIR            results folder [default: results/bigger-machine-HOST-UTCSTAMP]
  --pack DIR           copy target/release binaries (and target/peers/release/lab as
                       lab-peers), configs/ and this script into DIR, then exit

core plan (env var or flag):
  TX_CORE              transport benchmark: sending core            [0]
  RX_CORE              transport benchmark: receiving core          [1]
  RX2_CORE             second consumer of the 1p2c rows             [lab picks a spare core]
  FEED_MD_CORE         cores.feed_md of lab run / compare           [TX_CORE]
  ENGINE_HOT_CORE      cores.engine_hot of lab run / compare        [RX_CORE]
  COLD_CORES           cores.cold, comma-separated, e.g. 8,9,10     [empty: any allowed core]
  JITTER_CORE          core of the jitter probe                     [ENGINE_HOT_CORE]

sizes:
  SAMPLES              latency samples per transport row            [1000000]
  MESSAGES             ticks per throughput row                     [50000000]
  SPACING_NS           spacing of latency samples                   [2000]
  JITTER_SECONDS       length of the jitter probe                   [10]
  RUN_DURATION         lab run --duration                           [the config's]
  COMPARE_REPETITIONS  lab compare --repetitions                    [the matrix's]
  COMPARE_DURATION     lab compare --duration                       [the matrix's]

  --skip STEP          skip transport, jitter, run or compare (repeatable)
  --dry-run            write the machine description, plan and configs; print the commands
EOF
}

die() { echo "bigger-machine.sh: $*" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${BIN:-}"
CONFIGS="${CONFIGS:-}"
OUT="${OUT:-}"
PACK=""
DRY_RUN=0
SKIP=" "

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --bin) BIN="${2:?--bin needs a folder}"; shift 2 ;;
    --configs) CONFIGS="${2:?--configs needs a folder}"; shift 2 ;;
    --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
    --pack) PACK="${2:?--pack needs a folder}"; shift 2 ;;
    --skip) SKIP="$SKIP${2:?--skip needs a step} "; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --tx-core|--rx-core|--rx2-core|--feed-md-core|--engine-hot-core|--cold-cores|--jitter-core|\
    --samples|--messages|--spacing-ns|--jitter-seconds|--run-duration|--compare-repetitions|\
    --compare-duration)
      var="$(printf '%s' "${1#--}" | tr 'a-z-' 'A-Z_')"
      printf -v "$var" '%s' "${2:?$1 needs a value}"
      shift 2 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

if [ -n "$PACK" ]; then
  root="$(cd "$here/.." && pwd)"
  mkdir -p "$PACK"
  found=0
  for f in "$root"/target/release/lab "$root"/target/release/feed "$root"/target/release/feed-* \
           "$root"/target/release/engine "$root"/target/release/engine-*; do
    if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" "$PACK/"; found=$((found + 1)); fi
  done
  [ "$found" -gt 0 ] || die "no release binaries under $root/target/release (cargo build --release)"
  if [ -x "$root/target/peers/release/lab" ]; then
    cp "$root/target/peers/release/lab" "$PACK/lab-peers"
  else
    echo "note: no target/peers/release/lab: the iceoryx2 rows will say 'not built'" >&2
  fi
  rm -rf "$PACK/configs"
  cp -r "$root/configs" "$PACK/configs"
  cp "$here/bigger-machine.sh" "$PACK/"
  echo "packed into $PACK:"
  ls "$PACK"
  exit 0
fi

[ -n "$BIN" ] || { usage >&2; die "--bin DIR is required"; }
BIN="$(cd "$BIN" && pwd)"
for b in lab feed engine; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing or not executable"
done
LAB="$BIN/lab"
TRANSPORT_LAB="$LAB"
[ -x "$BIN/lab-peers" ] && TRANSPORT_LAB="$BIN/lab-peers"
if [ -z "$CONFIGS" ]; then
  if [ -d "$BIN/configs" ]; then CONFIGS="$BIN/configs"; else CONFIGS="$here/../configs"; fi
fi
[ -f "$CONFIGS/default.toml" ] && [ -f "$CONFIGS/compare.toml" ] \
  || die "$CONFIGS must hold default.toml and compare.toml (--configs DIR)"

TX_CORE="${TX_CORE:-0}"
RX_CORE="${RX_CORE:-1}"
RX2_CORE="${RX2_CORE:-}"
FEED_MD_CORE="${FEED_MD_CORE:-$TX_CORE}"
ENGINE_HOT_CORE="${ENGINE_HOT_CORE:-$RX_CORE}"
COLD_CORES="${COLD_CORES:-}"
JITTER_CORE="${JITTER_CORE:-$ENGINE_HOT_CORE}"
SAMPLES="${SAMPLES:-1000000}"
MESSAGES="${MESSAGES:-50000000}"
SPACING_NS="${SPACING_NS:-2000}"
JITTER_SECONDS="${JITTER_SECONDS:-10}"
RUN_DURATION="${RUN_DURATION:-}"
COMPARE_REPETITIONS="${COMPARE_REPETITIONS:-}"
COMPARE_DURATION="${COMPARE_DURATION:-}"

is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
for v in TX_CORE RX_CORE FEED_MD_CORE ENGINE_HOT_CORE JITTER_CORE SAMPLES MESSAGES SPACING_NS; do
  is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
[ -z "$RX2_CORE" ] || is_uint "$RX2_CORE" || die "RX2_CORE must be a core id, got '$RX2_CORE'"
case "$COLD_CORES" in *[!0-9,]*) die "COLD_CORES must be comma-separated core ids, got '$COLD_CORES'" ;; esac

host="$(hostname 2>/dev/null || echo host)"
OUT="${OUT:-results/bigger-machine-$host-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
echo "bigger-machine.sh: results in $OUT"

# --- machine description --------------------------------------------------------------
m="$OUT/machine"
mkdir -p "$m"
save() { # save FILE COMMAND...: the command's output, or why there is none
  local f="$1"; shift
  "$@" >"$m/$f" 2>&1 || echo "(failed: $*)" >>"$m/$f"
}
save lscpu.txt lscpu
save lscpu-extended.txt lscpu -e
save nproc.txt nproc
save nproc-all.txt nproc --all
save uname.txt uname -a
save allowed-cores.txt grep Cpus_allowed_list /proc/self/status
for f in isolated nohz_full online; do
  save "cpu-$f.txt" cat "/sys/devices/system/cpu/$f"
done
save cmdline.txt cat /proc/cmdline
save clocksource.txt cat /sys/devices/system/clocksource/clocksource0/current_clocksource
save cpu-flags.txt sh -c "grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(constant_tsc|nonstop_tsc|tsc_reliable|rdtscp)$'"
save governor.txt sh -c 'cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor | sort | uniq -c'
save numa.txt sh -c 'if command -v numactl >/dev/null; then numactl -H; else ls -d /sys/devices/system/node/node*; fi'
save meminfo.txt head -5 /proc/meminfo
save os-release.txt cat /etc/os-release
save loadavg.txt cat /proc/loadavg
save binaries.txt sh -c "cd '$BIN' && sha256sum lab* feed* engine* && ls -l"
save lab-version.txt "$LAB" --version
echo "isolated cores: $(cat "$m/cpu-isolated.txt" 2>/dev/null || echo '?')," \
     "nproc $(cat "$m/nproc.txt"), $(head -1 "$m/uname.txt")"

cat >"$OUT/plan.env" <<EOF
# core plan and sizes of this run (bigger-machine.sh)
TX_CORE=$TX_CORE
RX_CORE=$RX_CORE
RX2_CORE=$RX2_CORE
FEED_MD_CORE=$FEED_MD_CORE
ENGINE_HOT_CORE=$ENGINE_HOT_CORE
COLD_CORES=$COLD_CORES
JITTER_CORE=$JITTER_CORE
SAMPLES=$SAMPLES
MESSAGES=$MESSAGES
SPACING_NS=$SPACING_NS
JITTER_SECONDS=$JITTER_SECONDS
RUN_DURATION=$RUN_DURATION
COMPARE_REPETITIONS=$COMPARE_REPETITIONS
COMPARE_DURATION=$COMPARE_DURATION
TRANSPORT_LAB=$TRANSPORT_LAB
EOF

# --- configs with the core plan -------------------------------------------------------
# Every run config's [cores] section gets feed_md, engine_hot and cold from the plan; the
# rest of each file (and compare.toml, whose paths are relative to its folder) is copied
# as it is, so `lab compare --matrix OUT/configs/compare.toml` runs the derived configs.
rm -rf "$OUT/configs"
cp -r "$CONFIGS" "$OUT/configs"
cold_toml="[$(printf '%s' "$COLD_CORES" | sed 's/,/, /g')]"
for f in "$OUT"/configs/*.toml; do
  grep -q '^\[cores\]' "$f" || continue
  awk -v feed="$FEED_MD_CORE" -v hot="$ENGINE_HOT_CORE" -v cold="$cold_toml" '
    function close_cores() { if (in_cores && !saw_cold) print "cold = " cold; in_cores = 0 }
    /^[[:space:]]*\[/ { close_cores(); in_cores = ($0 ~ /^[[:space:]]*\[cores\][[:space:]]*(#.*)?$/); saw_cold = 0 }
    in_cores && /^[[:space:]]*feed_md[[:space:]]*=/    { print "feed_md = " feed; next }
    in_cores && /^[[:space:]]*engine_hot[[:space:]]*=/ { print "engine_hot = " hot; next }
    in_cores && /^[[:space:]]*cold[[:space:]]*=/       { print "cold = " cold; saw_cold = 1; next }
    { print }
    END { close_cores() }
  ' "$f" >"$f.new"
  mv "$f.new" "$f"
done

# --- the steps ------------------------------------------------------------------------
: >"$OUT/steps.txt"
failed=0
step() { # step NAME STDOUT_FILE STDERR_FILE COMMAND...
  local name="$1" out="$2" err="$3"; shift 3
  case "$SKIP" in *" $name "*) echo "== $name: skipped"; echo "$name skipped" >>"$OUT/steps.txt"; return 0 ;; esac
  echo "== $name: $*"
  if [ "$DRY_RUN" = 1 ]; then echo "$name dry-run: $*" >>"$OUT/steps.txt"; return 0; fi
  local start rc=0
  start=$(date +%s)
  "$@" >"$out" 2>"$err" || rc=$?
  echo "$name exit=$rc seconds=$(( $(date +%s) - start )) : $*" >>"$OUT/steps.txt"
  if [ "$rc" != 0 ]; then
    failed=$((failed + 1))
    echo "   FAILED (exit $rc); see $err" >&2
    tail -5 "$err" >&2 || true
  fi
}

transport=("$TRANSPORT_LAB" bench transport --config "$OUT/configs/default.toml"
  --tx-core "$TX_CORE" --rx-core "$RX_CORE" --samples "$SAMPLES" --messages "$MESSAGES"
  --spacing-ns "$SPACING_NS" --json "$OUT/transport.json")
[ -n "$RX2_CORE" ] && transport+=(--rx2-core "$RX2_CORE")
step transport "$OUT/transport.txt" "$OUT/transport.log" "${transport[@]}"
[ -f "$OUT/transport.txt" ] && cat "$OUT/transport.txt"

step jitter "$OUT/jitter.txt" "$OUT/jitter.log" \
  "$LAB" bench jitter --seconds "$JITTER_SECONDS" --core "$JITTER_CORE" --json "$OUT/jitter.json"
[ -f "$OUT/jitter.txt" ] && cat "$OUT/jitter.txt"

run=("$LAB" run --config "$OUT/configs/default.toml" --out "$OUT/run" --bin-dir "$BIN")
[ -n "$RUN_DURATION" ] && run+=(--duration "$RUN_DURATION")
step run "$OUT/run.txt" "$OUT/run.log" "${run[@]}"

compare=("$LAB" compare --matrix "$OUT/configs/compare.toml" --out "$OUT/compare" --bin-dir "$BIN")
[ -n "$COMPARE_REPETITIONS" ] && compare+=(--repetitions "$COMPARE_REPETITIONS")
[ -n "$COMPARE_DURATION" ] && compare+=(--duration "$COMPARE_DURATION")
step compare "$OUT/compare.txt" "$OUT/compare.log" "${compare[@]}"

echo
cat "$OUT/steps.txt"
echo "results: $OUT"
[ "$failed" = 0 ] || { echo "bigger-machine.sh: $failed step(s) failed" >&2; exit 1; }
