import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` with the toolchain's clang (`-target bpf`) and
/// embeds each object in the target as base64 in generated Swift, so that
/// `swift build` alone yields a `mip6` binary that carries its BPF programs.
@main
struct BPFBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let bpfDir = root.appending(path: "bpf")
        let sharedInclude = root.appending(path: "Sources/CMip6/include")
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: bpfDir.path()).sorted()
        let sources = names.filter { $0.hasSuffix(".bpf.c") }
        // Every .h/.c under bpf/, in subdirectories too (bpf/lib/), and every shared header:
        // an edit to any of them rebuilds the objects.
        let tree = (fm.enumerator(atPath: bpfDir.path())?.allObjects ?? []).compactMap { $0 as? String }.sorted()
        let headers = tree.filter { $0.hasSuffix(".h") || $0.hasSuffix(".c") }.map { bpfDir.appending(path: $0) }
            + (try fm.contentsOfDirectory(atPath: sharedInclude.path()))
                .filter { $0.hasSuffix(".h") }.map { sharedInclude.appending(path: $0) }

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
            let input = bpfDir.appending(path: source)
            let object = context.pluginWorkDirectoryURL.appending(path: "\(stem).bpf.o")
            let swift = context.pluginWorkDirectoryURL.appending(path: "Embedded_\(stem).swift")
            // One command that runs clang and embeds its object: declaring the .o as an
            // output would make SwiftPM copy it into a resource bundle beside the binary.
            commands.append(.buildCommand(
                displayName: "Compiling and embedding BPF \(source)",
                executable: embed,
                arguments: [swift.path(), stem, object.path(), clang.path(), "--",
                            "-O2", "-g", "-target", "bpf", "-Wall", "-Werror",
                            "-I", sharedInclude.path(), "-I", bpfDir.path(), "-I", multiarch,
                            "-c", input.path()],
                inputFiles: headers,
                outputFiles: [swift]
            ))
        }
        return commands
    }
}
