// Mip6Fuzz: libFuzzer harness for the code that parses hostile input (Mobility Header codec,
// packet parser, home agent and mobile node cores, key files). See fuzz/README.md.
//
// A normal `swift build` compiles this without libFuzzer: it then only writes seeds, replays
// inputs and otherwise prints how to run the fuzzer (exit 2). Built by fuzz/run with
// `-sanitize=fuzzer -DMIP6_FUZZ`, every other invocation goes to libFuzzer.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

let usage = """
    Mip6Fuzz: coverage-guided fuzzing of the Mobility Header codec and what parses hostile input.

      fuzz/run [SECONDS]                 build with libFuzzer and fuzz (default 60 s); see fuzz/README.md
      Mip6Fuzz --write-seeds DIR         write the seed corpus (fuzz/corpus is made this way)
      Mip6Fuzz --replay FILE...          run inputs once each (a crash input reproduces in any build)
      Mip6Fuzz --list-targets            the targets; an input's first byte picks one (byte % count)

    In a libFuzzer build (fuzz/run), anything else goes to libFuzzer, e.g.
      Mip6Fuzz [--target=NAME] [-max_total_time=S] [libFuzzer flags] CORPUS_DIR...
    MIP6_FUZZ_TARGET=NAME (or --target=NAME) pins every input to one target.
    """

func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    printError("Mip6Fuzz: \(message)\n")
    exit(2)
}

func pinTarget(_ name: String) {
    guard let t = FuzzTarget(rawValue: name) else {
        fail("unknown target '\(name)'; targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))")
    }
    Fuzz.pinned = t
}

func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    return out
}

var arguments = Array(CommandLine.arguments.dropFirst())
if let env = getenv("MIP6_FUZZ_TARGET"), !String(cString: env).isEmpty { pinTarget(String(cString: env)) }
arguments.removeAll { arg in
    guard arg.hasPrefix("--target=") else { return false }
    pinTarget(String(arg.dropFirst("--target=".count)))
    return true
}

switch arguments.first {
case "--write-seeds":
    guard arguments.count == 2 else { fail("--write-seeds DIR") }
    let n = Seeds.write(to: arguments[1])
    print("wrote \(n) seeds to \(arguments[1])")
    exit(0)
case "--replay":
    Fuzz.verbose = getenv("MIP6_FUZZ_VERBOSE").map { String(cString: $0) == "1" } ?? false
    guard arguments.count >= 2 else { fail("--replay FILE...") }
    for path in arguments.dropFirst() {
        guard let bytes = readFile(path) else { fail("cannot read \(path)") }
        let target = Fuzz.pinned ?? (bytes.first.map(FuzzTarget.select) ?? .mh)
        print("replay \(path) (\(bytes.count) bytes, target \(target.rawValue))")
        bytes.withUnsafeBytes { Fuzz.run($0) }
    }
    print("replayed \(arguments.count - 1) inputs, no crash")
    exit(0)
case "--list-targets":
    for (i, t) in FuzzTarget.allCases.enumerated() { print("\(i) \(t.rawValue)") }
    exit(0)
case "-h", "--help", "help":
    print(usage)
    exit(0)
default:
    break
}

#if MIP6_FUZZ
typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

/// libFuzzer's entry point for programs with their own main (compiler-rt FuzzerDriver.cpp).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: FuzzCallback) -> Int32

/// Also the conventional symbol, for drivers that look for it (FuzzerMain.o references it).
@_cdecl("LLVMFuzzerTestOneInput")
func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

var cArguments: [UnsafeMutablePointer<CChar>?] = ([CommandLine.arguments[0]] + arguments).map { strdup($0) } + [nil]
var cArgc = Int32(cArguments.count - 1)
let status = cArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var cArgv = buffer.baseAddress!
    return LLVMFuzzerRunDriver(&cArgc, &cArgv) { data, size in
        Fuzz.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
exit(status)
#else
printError(usage + "\n\nThis binary was built without libFuzzer (no -sanitize=fuzzer -DMIP6_FUZZ): use fuzz/run.\n")
exit(2)
#endif
