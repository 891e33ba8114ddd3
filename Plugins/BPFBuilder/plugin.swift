import Foundation
import PackagePlugin

/// Compiles BPF C with the toolchain's clang (`-target bpf`) and embeds each object in the
/// target as base64 in generated Swift, so that `swift build` alone yields binaries that
/// carry their BPF programs. Which programs go where:
///
///   DataPlane   bpf/*.bpf.c          the product programs (home agent, mobile node, ...)
///   Mip6Bench   perf/bpf/*.bpf.c     benchmark programs: only `mip6-bench` carries them
@main
struct BPFBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let bpfDir = root.appending(path: "bpf")
        let sharedInclude = root.appending(path: "Sources/CMip6/include")
        let benchInclude = root.appending(path: "Sources/CMip6Bench/include")
        let sourceDir: URL
        var includes = [sharedInclude, bpfDir]
        var importModule: String?
        switch target.name {
        case "DataPlane":
            sourceDir = bpfDir
        case "Mip6Bench":
            sourceDir = root.appending(path: "perf/bpf")
            includes += [benchInclude, sourceDir]
            importModule = "DataPlane"
        default:
            throw BPFBuilderError("BPFBuilder embeds BPF into DataPlane and Mip6Bench only, not \(target.name)")
        }
        let fm = FileManager.default
        let sources = try fm.contentsOfDirectory(atPath: sourceDir.path()).sorted().filter { $0.hasSuffix(".bpf.c") }
        // Every header and C file under the include directories (bpf/lib/ too): an edit to any
        // of them rebuilds the objects.
        var inputs: [URL] = []
        for dir in includes {
            guard let walk = fm.enumerator(at: dir, includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in walk where url.pathExtension == "h" || url.pathExtension == "c" { inputs.append(url) }
        }

        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "Mip6Embed").url
        #if arch(x86_64)
        let multiarch = "/usr/include/x86_64-linux-gnu"
        #elseif arch(arm64)
        let multiarch = "/usr/include/aarch64-linux-gnu"
        #else
        let multiarch = "/usr/include"
        #endif

        var commands: [Command] = []
        for source in sources {
            let stem = String(source.dropLast(".bpf.c".count))
            let input = sourceDir.appending(path: source)
            let object = context.pluginWorkDirectoryURL.appending(path: "\(stem).bpf.o")
            let swift = context.pluginWorkDirectoryURL.appending(path: "Embedded_\(stem).swift")
            // One command that runs clang and embeds its object: declaring the .o as an
            // output would make SwiftPM copy it into a resource bundle beside the binary.
            var arguments = [swift.path(), stem, object.path(), importModule ?? "-", clang.path(), "--",
                             "-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]
            for dir in includes { arguments += ["-I", dir.path()] }
            arguments += ["-I", multiarch, "-c", input.path()]
            commands.append(.buildCommand(
                displayName: "Compiling and embedding BPF \(source)",
                executable: embed,
                arguments: arguments,
                inputFiles: inputs + [input],
                outputFiles: [swift]
            ))
        }
        return commands
    }
}

struct BPFBuilderError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
