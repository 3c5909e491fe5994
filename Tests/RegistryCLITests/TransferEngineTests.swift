import Foundation
import RegistryClient
import RegistryCore
import RegistryServer
import RegistryTesting
import Testing

/// The transfer engine in process against a real server: chunking, dedup, verification hooks, the data port.
@Suite(.timeLimit(.minutes(10))) struct TransferEngineTests {
    /// A "checkpoint" of `tensors` tensors of `tensorSize` bytes each; `changed` tensors get other bytes.
    static func checkpoint(tensors: Int, tensorSize: Int, changed: Set<Int> = [], revision: UInt8 = 1) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tensors * tensorSize)
        for index in 0..<tensors {
            let seed = UInt8(truncatingIfNeeded: index * 7 + (changed.contains(index) ? Int(revision) * 101 : 0))
            bytes += BlobStoreConformance.pattern(tensorSize, seed: seed)
        }
        return bytes
    }

    @Test func aFineTuneWithTenPercentOfTensorsChangedUploadsOnlyTheirChunks() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("llm")
            let source = try fixture.makeDirectory("v1")
            let base = Self.checkpoint(tensors: 20, tensorSize: 600_000)
            try Data(base).write(to: source.appendingPathComponent("model.bin"))
            try Data(#"{"dim": 64}"#.utf8).write(to: source.appendingPathComponent("config.json"))
            let files = ["config.json", "model.bin"].map { PushFile(path: $0, url: source.appendingPathComponent($0)) }
            let first = try await fixture.admin.push(model: "llm", files: files, chunking: SampleModel.chunking)
            #expect(first.uploadedChunks == first.chunkCount)

            // Two of twenty tensors (10 %) change in place; the layout stays the same. Each change also dirties
            // about one chunk (64 KiB here) at either edge.
            let tuned = Self.checkpoint(tensors: 20, tensorSize: 600_000, changed: [3, 14], revision: 2)
            try Data(tuned).write(to: source.appendingPathComponent("model.bin"))
            let second = try await fixture.admin.push(model: "llm", files: files, chunking: SampleModel.chunking)
            let newChunks = Set(second.manifest.chunkDigests).subtracting(first.manifest.chunkDigests)
            #expect(second.uploadedChunks == newChunks.count)
            let newBytes = second.manifest.files.flatMap(\.chunks).filter { newChunks.contains($0.digest) }
            #expect(second.uploadedBytes <= newBytes.reduce(0) { $0 + $1.size })
            let share = Double(second.uploadedBytes) / Double(second.manifest.totalSize)
            #expect(share > 0.05 && share <= 0.15, "sent \(share * 100) % of the bytes")

            let pulled = URL(fileURLWithPath: fixture.directory + "/pulled")
            _ = try await fixture.admin.pull(model: "llm", version: second.version.version, to: pulled)
            #expect(Array(try Data(contentsOf: pulled.appendingPathComponent("model.bin"))) == tuned)
        }
    }

    @Test(arguments: [
        ContentDefinedChunker.Parameters(minimumSize: 16 << 10, averageSize: 64 << 10, maximumSize: 256 << 10),
        ContentDefinedChunker.Parameters.default,
    ])
    func theManifestMatchesAnIndependentComputationAcrossReadBlocks(chunking: ContentDefinedChunker.Parameters)
        async throws
    {
        // Push cuts, hashes and assembles chunks in a pipeline over 8 MiB read blocks; sizes around the block edges
        // must give exactly the chunks and digests that chunking and hashing each whole file at once gives.
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("edges")
            let source = try fixture.makeDirectory("edges")
            let block = 8 << 20
            let sizes = [0, 1, block - 1, block, block + 1, 2 * block + 12_345]
            var expected: [String: [UInt8]] = [:]
            for (index, size) in sizes.enumerated() {
                let bytes = BlobStoreConformance.pattern(size, seed: UInt8(index + 40))
                expected["f\(index).bin"] = bytes
                try Data(bytes).write(to: source.appendingPathComponent("f\(index).bin"))
            }
            let files = expected.keys.sorted().map { PushFile(path: $0, url: source.appendingPathComponent($0)) }
            let pushed = try await fixture.admin.push(model: "edges", files: files, chunking: chunking)
            #expect(pushed.manifest.files.map(\.path) == expected.keys.sorted())
            for file in pushed.manifest.files {
                let bytes = expected[file.path]!
                #expect(file.size == Int64(bytes.count))
                #expect(file.digest == Digest(of: bytes), "\(file.path)")
                var offset = 0
                var chunks: [Manifest.Chunk] = []
                for length in ContentDefinedChunker.chunkLengths(of: bytes, parameters: chunking) {
                    chunks.append(
                        Manifest.Chunk(digest: Digest(of: bytes[offset..<offset + length]), size: Int64(length)))
                    offset += length
                }
                #expect(file.chunks == chunks, "\(file.path): \(file.chunks.count) chunks, \(chunks.count) expected")
            }
        }
    }

    @Test func chunksRepeatedInsideAVersionTravelOnceInEachDirection() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("twins")
            let source = try fixture.makeDirectory("source")
            let bytes = BlobStoreConformance.pattern(700_000, seed: 3)
            try Data(bytes).write(to: source.appendingPathComponent("a.bin"))
            try Data(bytes).write(to: source.appendingPathComponent("b.bin"))
            let files = ["a.bin", "b.bin"].map { PushFile(path: $0, url: source.appendingPathComponent($0)) }
            let pushed = try await fixture.admin.push(model: "twins", files: files, chunking: SampleModel.chunking)
            let perFile = pushed.manifest.files[0].chunks.count
            #expect(pushed.chunkCount == perFile)
            #expect(pushed.uploadedChunks == perFile)

            let target = URL(fileURLWithPath: fixture.directory + "/pulled")
            let progress = ProgressLog()
            let pulled = try await fixture.admin.pull(
                model: "twins", version: 1, to: target, concurrency: 3, durable: true,
                progress: { progress.record($0, $1) })
            #expect(pulled.fetchedChunks == perFile)
            #expect(pulled.resumedChunks == 0)
            #expect(progress.last == 1_400_000)
            #expect(try SampleModel.read(target) == ["a.bin": bytes, "b.bin": bytes])
        }
    }

    @Test func aFailingVerificationHookLeavesNothingBehind() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            _ = try await fixture.admin.createModel("fraud")
            let pushed = try await fixture.admin.push(
                model: "fraud", files: sample.files, chunking: SampleModel.chunking)
            let parent = try fixture.makeDirectory("pulled")
            let seen = ProgressLog()
            let error = await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.pull(
                    model: "fraud", version: 1, to: parent.appendingPathComponent("model"),
                    verify: { manifest, digest in
                        seen.record(manifest.totalSize, 0)
                        #expect(digest == pushed.manifestDigest)
                        throw RegistryError(.signatureInvalid, "not signed by a trusted key")
                    })
            }
            #expect(error?.code == .signatureInvalid)
            #expect(seen.last == pushed.manifest.totalSize)
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
        }
    }

    @Test func pullIntoAnExistingDirectoryReplacesOnlyTheManifestFiles() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            _ = try await fixture.admin.createModel("fraud")
            _ = try await fixture.admin.push(model: "fraud", files: sample.files, chunking: SampleModel.chunking)
            let target = try fixture.makeDirectory("serving")
            try Data("stale".utf8).write(to: target.appendingPathComponent("weights.bin"))
            try Data("keep".utf8).write(to: target.appendingPathComponent("local.txt"))
            _ = try await fixture.admin.pull(model: "fraud", version: 1, to: target)
            var expected = sample.contents
            expected["local.txt"] = Array("keep".utf8)
            #expect(try SampleModel.read(target) == expected)
            #expect(try ArtifactTransferTests.leftovers(in: fixture.directory).isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func theDataPortServesArtifactsAndResolveAdvertisesIt() async throws {
        try await TestRegistry.with(.sqlite, configuration: ServerConfiguration(host: "127.0.0.1", dataPort: 0)) {
            registry in
            let server = registry.server
            let dataPort = try #require(server.dataPort)
            #expect(dataPort != server.port)
            #expect(server.dataBaseURL == "http://127.0.0.1:\(dataPort)")
            let admin = RegistryClient(baseURL: server.baseURL, token: registry.adminToken)
            let data = RegistryClient(baseURL: server.dataBaseURL, token: registry.adminToken)
            let sample = try SampleModel(in: URL(fileURLWithPath: registry.directory + "/source"))
            _ = try await admin.createModel("fraud")
            let pushed = try await admin.push(model: "fraud", files: sample.files, chunking: SampleModel.chunking)
            let bob = try await admin.createToken(subject: "bob")
            let acl = try await admin.accessList(model: "fraud")
            _ = try await admin.setAccessList(
                model: "fraud", grants: acl.grants + [Grant(subject: "bob", role: .approver)], revision: acl.revision)
            let approver = RegistryClient(baseURL: server.baseURL, token: bob.token)
            _ = try await approver.decide(
                model: "fraud", number: 1, decision: .approve, comment: nil, revision: pushed.version.revision)
            _ = try await admin.promote(model: "fraud", stage: "production", version: 1, revision: nil)

            let resolution = try #require(try await admin.resolve(model: "fraud", stage: "production"))
            #expect(resolution.artifactsURL == server.dataBaseURL)
            let chunk = pushed.manifest.chunkDigests[0]
            #expect(try await data.blobSize(chunk) != nil)
            #expect(try await data.manifest(pushed.manifestDigest) == pushed.manifest)
            // The data port serves artifacts only.
            let metadataCall = await #expect(throws: RegistryError.self) { _ = try await data.model("fraud") }
            #expect(metadataCall?.code == .notFound)

            let target = URL(fileURLWithPath: registry.directory + "/pulled")
            let pulled = try await admin.pull(model: "fraud", stage: "production", to: target)
            #expect(pulled.fetchedChunks == pushed.chunkCount)
            #expect(try SampleModel.read(target) == sample.contents)
        }
    }
}
