#!/usr/bin/env bash
# Optional, not part of CI: coverage-guided fuzzing with libFuzzer (`swiftc -sanitize=fuzzer`, Linux) for
# the decoders whose module builds without packages. Each target is the module's sources plus an entry
# point in scripts/libfuzzer/, built with AddressSanitizer into .build-libfuzzer/<target>, and started on
# the seed corpus of the matching FuzzTests target; new inputs go to .build-libfuzzer/corpus-<target>.
#
#   bash scripts/libfuzzer.sh json|go-duration|nft-json [libFuzzer options, e.g. -max_total_time=600 -jobs=2]
#
# A crash leaves crash-<sha1> in the current directory: add it as a regress-* seed of the FuzzTests target.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/libfuzzer.sh json|go-duration|nft-json [libFuzzer options]}
shift
case $target in
    json)
        module=SwitchboardCore
        sources=(Sources/SwitchboardCore/Decoding/JSONParser.swift Sources/SwitchboardCore/Decoding/JSONValue.swift)
        seeds=Tests/SwitchboardCoreTests/Fixtures/fuzz/json ;;
    go-duration)
        module=SwitchboardCore
        sources=(Sources/SwitchboardCore/GoDuration.swift)
        seeds=Tests/SwitchboardCoreTests/Fixtures/fuzz/go-duration ;;
    nft-json)
        # NFTListing's sources with the NFTModel ones they import, as one module.
        module=NFTModel
        sources=(Sources/NFTModel/*.swift Sources/NFTListing/*.swift)
        seeds=Tests/NFTListingTests/Fixtures/fuzz/nft-json ;;
    *) echo "unknown target $target (json, go-duration, nft-json)" >&2; exit 2 ;;
esac
out=.build-libfuzzer
mkdir -p "$out/corpus-$target"
swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name "$module" -package-name switchboard \
    "${sources[@]}" "scripts/libfuzzer/$target.swift" -o "$out/$target"
exec "$out/$target" -max_len=65536 "$out/corpus-$target" "$seeds" "$@"
