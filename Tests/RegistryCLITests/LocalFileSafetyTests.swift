import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 9, item 8 (client side): push does not follow links out of the pushed directory unless told to, and pull
/// never writes through a link planted where it stages files.
@Suite(.timeLimit(.minutes(10))) struct LocalFileSafetyTests {
    @Test func pushRefusesASymlinkOutOfTheDirectoryUnlessToldToFollowIt() async throws {
        let binary = try #require(
            CommandLineTests.registryBinary(), "the registry executable is built next to the tests")
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("linked")
            let secret = Array("-----BEGIN OPENSSH PRIVATE KEY----- \(UUID().uuidString)".utf8)
            let outside = try fixture.makeDirectory("home/.ssh")
            try Data(secret).write(to: outside.appendingPathComponent("id_ed25519"))
            let model = try fixture.makeDirectory("model")
            try Data("weights".utf8).write(to: model.appendingPathComponent("weights.bin"))
            try FileManager.default.createDirectory(
                at: model.appendingPathComponent("extra"), withIntermediateDirectories: true)
            let link = model.appendingPathComponent("extra/tokenizer.bin").path
            #expect(symlink(outside.appendingPathComponent("id_ed25519").path, link) == 0)
            let environment = ["REGISTRY_URL": fixture.baseURL, "REGISTRY_TOKEN": fixture.adminToken]

            let refused = try await CommandLineTests.run(binary, ["push", "linked", model.path], environment)
            #expect(refused.status != 0, "a push through a link out of the directory succeeded")
            #expect(refused.error.contains(link), "\(refused.error)")
            #expect(refused.error.contains("--follow-symlinks"), "\(refused.error)")
            #expect(try await fixture.admin.blobSize(Digest(of: secret)) == nil, "the linked file was uploaded")
            await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.version(model: "linked", number: 1)
            }

            let followed = try await CommandLineTests.run(
                binary, ["push", "linked", model.path, "--follow-symlinks", "--json"], environment)
            #expect(followed.status == 0, "\(followed.error)")
            let version = try await fixture.admin.version(model: "linked", number: 1)
            let manifest = try await fixture.admin.manifest(version.manifestDigest)
            #expect(manifest.files.map(\.path).sorted() == ["extra/tokenizer.bin", "weights.bin"])
        }
    }

    @Test func pullNeverWritesThroughALinkPlantedInItsStagingArea() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("staged")
            let source = try fixture.makeDirectory("source")
            let weights = Array("the real weights, long enough to matter".utf8)
            try Data(weights).write(to: source.appendingPathComponent("model.txt"))
            let pushed = try await fixture.admin.push(
                model: "staged", files: [PushFile(path: "model.txt", url: source.appendingPathComponent("model.txt"))])
            let parent = try fixture.makeDirectory("pulled")
            let name = ".model.partial-\(pushed.manifestDigest.hex.prefix(16))"
            let victims = try fixture.makeDirectory("victims")
            func victim(_ name: String) throws -> String {
                let path = victims.appendingPathComponent(name).path
                try Data("precious \(name)".utf8).write(to: URL(fileURLWithPath: path))
                return path
            }
            /// A staging directory as another user could plant it: its journal and its staged file linked elsewhere.
            func plant(_ directory: String, journal: String, file: String?, mode: mode_t = 0o777) throws {
                try FileManager.default.createDirectory(
                    atPath: directory + "/files", withIntermediateDirectories: true)
                #expect(symlink(journal, directory + "/journal") == 0)
                if let file { #expect(symlink(file, directory + "/files/model.txt") == 0) }
                #expect(chmod(directory, mode) == 0)
            }
            // The name older clients used (predictable from the public manifest digest): they appended their journal
            // to whatever its `journal` linked to.
            try plant(parent.path + "/" + name, journal: try victim("predictable"), file: nil)
            // A directory with the new prefix that others may write into, and a link with the new prefix.
            try plant(parent.path + "/" + name + "-open", journal: try victim("open"), file: try victim("open-file"))
            let elsewhere = try fixture.makeDirectory("elsewhere").path
            try plant(elsewhere, journal: try victim("linked"), file: try victim("linked-file"), mode: 0o700)
            #expect(symlink(elsewhere, parent.path + "/" + name + "-link") == 0)

            let result = try await fixture.admin.pull(
                manifestDigest: pushed.manifestDigest, version: 1, to: parent.appendingPathComponent("model"))
            #expect(result.files == 1)
            #expect(FileManager.default.contents(atPath: parent.path + "/model/model.txt") == Data(weights))
            for name in ["predictable", "open", "open-file", "linked", "linked-file"] {
                #expect(
                    FileManager.default.contents(atPath: victims.appendingPathComponent(name).path)
                        == Data("precious \(name)".utf8), "the pull wrote through the link to \(name)")
            }
            // What the pull staged in is gone; what it did not make is left alone.
            let left = try FileManager.default.contentsOfDirectory(atPath: parent.path).filter { $0.hasPrefix(".") }
            #expect(Set(left) == [name, name + "-open", name + "-link"])
        }
    }

    @Test func aResumedStagingDirectoryIsNotWrittenThroughALinkEither() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("resumed")
            let source = try fixture.makeDirectory("source")
            try Data("weights".utf8).write(to: source.appendingPathComponent("model.txt"))
            let pushed = try await fixture.admin.push(
                model: "resumed", files: [PushFile(path: "model.txt", url: source.appendingPathComponent("model.txt"))])
            let parent = try fixture.makeDirectory("pulled")
            // A staging directory of this user, closed to others, as a killed pull leaves it, with a link inside.
            let staging = parent.path + "/.model.partial-\(pushed.manifestDigest.hex.prefix(16))-mine"
            try FileManager.default.createDirectory(atPath: staging + "/files", withIntermediateDirectories: true)
            #expect(chmod(staging, 0o700) == 0)
            let victim = fixture.directory + "/victim.txt"
            try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
            #expect(symlink(victim, staging + "/journal") == 0)
            await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.pull(
                    manifestDigest: pushed.manifestDigest, version: 1, to: parent.appendingPathComponent("model"))
            }
            #expect(FileManager.default.contents(atPath: victim) == Data("precious".utf8))
        }
    }
}
