/// Command-line options of `switchboard-bench`. Parsed by hand: the harness takes a handful of flags and
/// this slice keeps its dependencies to the project's own modules.
public struct Options: Sendable, Equatable {
    public var quick = false
    public var sizes: [Int] = [100, 1000, 10000, 30000]
    public var endpointsPerService = 10
    public var changes = 200
    public var outputDirectory = "bench/results"
    public var seed: UInt64 = 0x5b1e_0c1d
    /// A cold ruleset with more elements than this is written as the agent writes it, in bounded batches
    /// (one libnftables transaction of 2M+ elements needs gigabytes); up to it, in one transaction.
    public var coldBatchesAbove = 2_000_000
    /// TCP connects per size for the data-plane measurement (0: skip it).
    public var connects = 2000
    /// Churn and peer runs (ChurnOptions.swift); when either is chosen, only they run.
    public var churn = ChurnOptions()
    /// The scale run (ScaleOptions.swift): `--apiserver` without `--churn`.
    public var scale = ScaleOptions()

    /// Which runs one invocation makes; each writes its own files.
    public enum Mode: Sendable, Equatable {
        /// Cold sync, single changes, data plane, cost, Maglev (`latest.*`).
        case sizes
        /// `--churn` and / or `--peer` (`latest-churn.*`, `latest-peer.*`, ...).
        case churnAndPeer
        /// `--apiserver` without `--churn`, with or without `--peer` (`latest-scale.*`).
        case scale
    }

    /// `--apiserver` alone used to be refused ("goes with --churn"), so giving it the scale run changes no
    /// command that worked before, except `--apiserver --peer`, where `--apiserver` had no effect: that is
    /// now the scale run with kube-proxy beside it. `--peer` alone and `--churn --apiserver [--peer]` are as
    /// they were.
    public var mode: Mode {
        if churn.apiserver && !churn.churn { return .scale }
        return churn.selected ? .churnAndPeer : .sizes
    }

    public init() {}

    public static let usage = """
        usage: switchboard-bench [--quick] [--sizes 100,1000,10000,30000] [--endpoints 10] [--changes 200]
                                 [--connects 2000] [--output bench/results] [--seed N]
                                 [--cold-batches-above 2000000]
          --quick     sizes 100,1000, 30 changes, 300 connects (scale run: 5 new Services); writes quick.*
                      instead of latest.*
          --connects  data-plane TCP connects per size through a ClusterIP (0 skips the data plane)
          --cold-batches-above  elements; a larger cold ruleset goes in the agent's bounded batches (0: always)
        \(ChurnOptions.usage)
        \(ScaleOptions.usage)
        """

    public struct UsageError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var sizesGiven = false
        var changesGiven = false
        var connectsGiven = false
        var newServicesGiven = false
        var scaleFlagGiven = false
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let v = rest.popFirst() else { throw UsageError(description: "\(flag) needs a value\n\(usage)") }
            return v
        }
        func positive(_ flag: String, _ text: String) throws -> Int {
            guard let n = Int(text), n > 0 else {
                throw UsageError(description: "\(flag): not a positive integer: \(text)")
            }
            return n
        }
        while let arg = rest.popFirst() {
            switch arg {
            case "--quick": options.quick = true
            case "--sizes":
                let text = try value(arg)
                options.sizes = try text.split(separator: ",").map { try positive(arg, String($0)) }
                sizesGiven = true
            case "--endpoints": options.endpointsPerService = try positive(arg, try value(arg))
            case "--changes":
                options.changes = try positive(arg, try value(arg))
                changesGiven = true
            case "--connects":
                let text = try value(arg)
                guard let n = Int(text), n >= 0 else {
                    throw UsageError(description: "\(arg): not a non-negative integer: \(text)")
                }
                options.connects = n
                connectsGiven = true
            case "--output": options.outputDirectory = try value(arg)
            case "--cold-batches-above":
                guard let n = Int(try value(arg)), n >= 0 else {
                    throw UsageError(description: "--cold-batches-above: not a count of elements")
                }
                options.coldBatchesAbove = n
            case "--seed":
                guard let s = UInt64(try value(arg)) else { throw UsageError(description: "--seed: not a number") }
                options.seed = s
            case "-h", "--help": throw UsageError(description: usage)
            default:
                if try options.churn.parse(arg, value: { try value(arg) }) { continue }
                guard try options.scale.parse(arg, value: { try value(arg) }) else {
                    throw UsageError(description: "unknown argument \(arg)\n\(usage)")
                }
                scaleFlagGiven = true
                if arg == "--new-services" { newServicesGiven = true }
            }
        }
        if options.mode == .scale && !sizesGiven && !options.quick { options.sizes = [1000, 10000, 30000] }
        if options.quick {
            if !sizesGiven { options.sizes = [100, 1000] }
            if !changesGiven { options.changes = 30 }
            if !connectsGiven { options.connects = 300 }
            if !newServicesGiven { options.scale.newServices = 5 }
        }
        guard !options.sizes.isEmpty else { throw UsageError(description: "--sizes is empty") }
        try options.churn.validate()
        if scaleFlagGiven && options.mode != .scale {
            throw UsageError(description: "--new-services, --settle and --rebuild-period go with --apiserver (without --churn)")
        }
        if options.mode == .scale, let largest = options.sizes.max(), largest > ScaleOptions.maxServices {
            throw UsageError(
                description: "--sizes: at most \(ScaleOptions.maxServices) Services through the API (its Service "
                    + "range 10.96.0.0/16 also holds the new Services); got \(largest)")
        }
        return options
    }

    /// `quick` or `latest`, then the run's suffix: a quick run never overwrites the committed full results,
    /// and a churn, peer or scale run never overwrites another's (`latest-churn`, `quick-peer`, `latest-scale`).
    public var resultBaseName: String {
        (quick ? "quick" : "latest") + (mode == .scale ? "-scale" : churn.resultSuffix)
    }
}
