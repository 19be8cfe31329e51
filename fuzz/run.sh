#!/usr/bin/env bash
# fuzz/run.sh [--merge | --merge-only] [SECONDS_PER_TARGET] [TARGET...]
#
# Runs every halfopen fuzz target (or the TARGETs named) with AFL++ for
# SECONDS_PER_TARGET seconds each (default 60), one target at a time, from
# fuzz/corpus/<target>/, with findings under fuzz/out/<target>/ (git-ignored,
# recreated on every run). Then prints, per target, how long it ran, execs,
# execs/s, corpus entries (paths), crashes and hangs, and exits 1 if any
# target crashed or hung.
#
# --merge: afterwards, minimise each target's corpus together with what the
# run found (afl-cmin) back into fuzz/corpus/<target>/: review and commit it.
# --merge-only: no fuzzing; merge what the last run left in fuzz/out/.
#
# Needs: the stable Rust toolchain; gcc (cc) and make, with which
# `cargo install cargo-afl` builds AFL++ from the source cargo-afl ships
# (once per Rust toolchain; no network but crates.io). No clang or LLVM:
# coverage comes from rustc's own SanitizerCoverage pass. AFL++'s LLVM
# plugins (CMPLOG, `cargo afl config --build --plugins`) would need
# llvm-config of rustc's LLVM major version (22 for rustc 1.95), which Debian
# 12 does not package, so the script does not build them.
#
# Settings for a shared machine: no CPU binding (AFL_NO_AFFINITY), no CPU
# governor check (AFL_SKIP_CPUFREQ), a 1 s timeout per input (slower is a
# hang) and a 2 GiB address-space limit per input (more is a crash: memory
# that grows without bound).
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$PWD

merge=0
fuzz=1
case ${1:-} in
  --merge) merge=1; shift ;;
  --merge-only) merge=1; fuzz=0; shift ;;
esac
secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [--merge | --merge-only] [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true

all_targets=()
for f in afl/src/bin/*.rs; do
  all_targets+=("$(basename "$f" .rs)")
done
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

# cargo-afl and AFL++
if ! cargo afl --version >/dev/null 2>&1; then
  echo "installing cargo-afl (builds AFL++ too; a few minutes)"
  cargo install cargo-afl --locked
fi
if ! out=$(cargo afl config --build 2>&1); then
  # "already built" is the normal case after `cargo install cargo-afl`
  grep -q "already built" <<<"$out" || { echo "$out" >&2; exit 1; }
fi

# AFL++ as cargo-afl built it for this toolchain. `cargo afl cmin` runs
# afl-cmin.py, which finds no coverage in these binaries here (AFL++ 4.x as
# cargo-afl 0.18 ships it); afl-cmin.bash works.
rustc_dir="rustc-$(rustc --version | awk '{print $2}')-$(rustc -vV | awk '/^commit-hash/ {print substr($2, 1, 7)}')"
afl_bin=$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs/$rustc_dir"/afl.rs-*/afl/bin | tail -1)
[[ -x $afl_bin/afl-cmin.bash ]] || { echo "no AFL++ under $afl_bin" >&2; exit 1; }

echo "building the harness (fuzz/afl, instrumented, release with debug assertions)"
(cd afl && cargo afl build --release --quiet)

export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
mkdir -p out
failed=0
summary=()
for t in "${targets[@]}"; do
  bin=afl/target/release/$t
  [[ -x $bin ]] || { echo "no target $t (one of: ${all_targets[*]})" >&2; exit 2; }
  [[ -d corpus/$t ]] || { echo "no corpus fuzz/corpus/$t" >&2; exit 2; }
  if ((fuzz)); then
    rm -rf "out/$t"
    echo "== $t: ${secs}s"
    # -V: stop after that many seconds; afl-fuzz exits 0 then.
    cargo afl fuzz -i "corpus/$t" -o "out/$t" -V "$secs" -t 1000 -m 2048 -- "$bin" >"out/$t.log" 2>&1 || {
      echo "afl-fuzz failed for $t; the end of out/$t.log:" >&2
      tail -20 "out/$t.log" >&2
      failed=1
      continue
    }
    stats=out/$t/default/fuzzer_stats
    get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    crashes=$(get saved_crashes)
    hangs=$(get saved_hangs)
    summary+=("$(printf '%-20s %6ss %12s %10s %7s %8s %6s' "$t" "$(get run_time)" "$(get execs_done)" \
      "$(get execs_per_sec)" "$(get corpus_count)" "$crashes" "$hangs")")
    if ((crashes + hangs > 0)); then
      failed=1
      ls "out/$t/default/crashes" "out/$t/default/hangs" 2>/dev/null | grep -v README || true
    fi
  fi
  if ((merge)); then
    [[ -d out/$t/default/queue ]] || { echo "nothing to merge for $t: no fuzz/out/$t" >&2; exit 2; }
    tmp=$(mktemp -d)
    cp "corpus/$t"/* "out/$t/default/queue"/id:* "$tmp"/ 2>/dev/null || true
    rm -rf "out/$t.cmin"
    AFL_PATH=$afl_bin PATH=$afl_bin:$PATH "$afl_bin/afl-cmin.bash" -i "$tmp" -o "out/$t.cmin" -t 1000 -m 2048 -- "$bin" \
      >"out/$t.cmin.log" 2>&1
    rm -rf "$tmp"
    # Every named input stays (recorded seeds, regress-* crashes); of what the
    # fuzzer found (q-<sha1> from earlier merges, id:* now), what afl-cmin
    # kept for its coverage, smallest first, while the corpus stays under
    # CORPUS_BYTES (default 256 KiB): the corpus is replayed by cargo test
    # and committed, so it stays small.
    rm -rf "corpus/$t.new" && mkdir "corpus/$t.new"
    for f in "corpus/$t"/*; do
      [[ $(basename "$f") == q-* ]] || cp "$f" "corpus/$t.new/"
    done
    budget=${CORPUS_BYTES:-262144}
    used=$(find "corpus/$t.new" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    dropped=0
    while read -r size f; do
      name=$(basename "$f")
      case $name in
        id:*) name=q-$(sha1sum "$f" | cut -c1-16) ;;
        q-*) ;;
        *) continue ;;
      esac
      if ((used + size > budget)); then
        dropped=$((dropped + 1))
        continue
      fi
      cp "$f" "corpus/$t.new/$name"
      used=$((used + size))
    done < <(find "out/$t.cmin" -type f -printf '%s %p\n' | sort -n)
    rm -rf "corpus/$t" && mv "corpus/$t.new" "corpus/$t"
    echo "   corpus/$t: $(ls "corpus/$t" | wc -l) files, $used bytes ($dropped larger inputs over the budget left out)"
  fi
done

((fuzz)) || exit 0
printf '\n%-20s %7s %12s %10s %7s %8s %6s\n' target time execs execs/s paths crashes hangs
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "FAILED: crashes or hangs above (inputs under fuzz/out/<target>/default/{crashes,hangs}; see fuzz/README.md)"
  exit 1
fi
echo "no crash, no hang"
