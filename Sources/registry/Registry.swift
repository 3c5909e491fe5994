import ArgumentParser
import Foundation
import RegistryCore

/// The `registry` command: runs the server (`serve`) and talks to one as a client.
@main
struct Registry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "A model registry: versions, approvals, stages and content-addressed artifacts.",
        subcommands: [
            Serve.self, ModelCommand.self, VersionCommand.self, Approve.self, StageCommand.self, Resolve.self,
            Events.self, AuditCommand.self, TokenCommand.self, Push.self, Pull.self, Sign.self, Verify.self,
            KeysCommand.self, GCCommand.self, Backup.self, Restore.self, RolloutCommand.self, Agent.self,
            MigrateCommand.self,
        ])

    /// Runs the parsed command; registry errors print as `error: CODE: message` and exit 1.
    static func main() async {
        MemoryTuning.apply()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as RegistryError {
            FileHandle.standardError.write(Data("error: \(error.code): \(error.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}
