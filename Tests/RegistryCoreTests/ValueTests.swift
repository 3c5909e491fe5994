import Foundation
import RegistryCore
import Testing

@Suite(.timeLimit(.minutes(10))) struct NamesTests {
    @Test(arguments: ["a", "fraud-detector", "m.v2_final", "0abc", String(repeating: "a", count: 128)])
    func validNamesPass(_ name: String) {
        #expect(Names.isValid(name))
    }

    @Test(arguments: ["", "-a", ".a", "_a", "A", "fraud detector", "a/b", "é", String(repeating: "a", count: 129)])
    func invalidNamesFailWithInvalidName(_ name: String) {
        #expect(!Names.isValid(name))
        #expect(throws: RegistryError.self) { try Names.validate(name, kind: "model") }
        do {
            try Names.validate(name, kind: "model")
        } catch let error as RegistryError {
            #expect(error.code == .invalidName)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func subjectsAreBoundedPrintableASCII() {
        #expect((try? Names.validateSubject("ci-bot@example.com")) != nil)
        #expect((try? Names.validateSubject("")) == nil)
        #expect((try? Names.validateSubject("a b")) == nil)
        #expect((try? Names.validateSubject("a:b")) == nil)
        #expect((try? Names.validateSubject(String(repeating: "x", count: 129))) == nil)
    }
}

@Suite(.timeLimit(.minutes(10))) struct DigestTests {
    @Test func digestsOfBytesMatchKnownSHA256() throws {
        let digest = Digest(of: Array("abc".utf8))
        #expect(digest.description == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(try Digest(parsing: digest.description) == digest)
    }

    @Test(arguments: [
        "", "sha256:", "md5:" + String(repeating: "a", count: 64), "sha256:" + String(repeating: "A", count: 64),
        "sha256:" + String(repeating: "a", count: 63), "sha256:" + String(repeating: "g", count: 64),
    ])
    func malformedDigestsAreRejected(_ text: String) {
        do {
            _ = try Digest(parsing: text)
            Issue.record("accepted \(text)")
        } catch let error as RegistryError {
            #expect(error.code == .invalidDigest)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func digestsTravelAsStrings() throws {
        let digest = Digest(of: [1, 2, 3])
        let bytes = try JSONCoding.encode([digest])
        #expect(String(decoding: bytes, as: UTF8.self) == "[\"\(digest)\"]")
        #expect(try JSONCoding.decode([Digest].self, from: bytes) == [digest])
    }
}

@Suite(.timeLimit(.minutes(10))) struct ManifestTests {
    func file(_ path: String, sizes: [Int64]) -> Manifest.File {
        Manifest.File(
            path: path, size: sizes.reduce(0, +), digest: Digest(of: Array(path.utf8)),
            chunks: sizes.enumerated().map { Manifest.Chunk(digest: Digest(of: [UInt8($0.offset)]), size: $0.element) })
    }

    @Test func aWellFormedManifestValidatesAndSummarises() throws {
        let manifest = Manifest(files: [file("model/weights.bin", sizes: [4, 4, 2]), file("config.json", sizes: [3])])
        try manifest.validate()
        #expect(manifest.totalSize == 13)
        #expect(manifest.chunkDigests.count == 3)
        let parsed = try Manifest.parse(try JSONCoding.encode(manifest))
        #expect(parsed == manifest)
    }

    @Test(arguments: ["/abs", "a/../b", "./a", "a//b", "a\\b", "", "a/"])
    func unsafePathsAreRejected(_ path: String) {
        expectInvalid(Manifest(files: [file(path, sizes: [1])]))
    }

    @Test func duplicatePathsMismatchedSizesAndEmptyManifestsAreRejected() {
        expectInvalid(Manifest(files: [file("a", sizes: [1]), file("a", sizes: [2])]))
        var wrongSize = file("a", sizes: [1, 2])
        wrongSize.size = 4
        expectInvalid(Manifest(files: [wrongSize]))
        expectInvalid(Manifest(files: []))
        var version = Manifest(files: [file("a", sizes: [1])])
        version.schemaVersion = 2
        expectInvalid(version)
        #expect((try? Manifest.parse(Array("{not json".utf8))) == nil)
    }

    @Test func anEmptyFileHasNoChunks() throws {
        let empty = Manifest(files: [file("empty", sizes: []), file("weights.bin", sizes: [3])])
        try empty.validate()
        #expect(empty.totalSize == 3)
        #expect(empty.chunkDigests.count == 1, "the empty file adds no chunk")
        #expect(try Manifest.parse(try JSONCoding.encode(empty)) == empty)
        // Chunks that add up to nothing do not make an empty file: an empty chunk, or sizes that cancel out.
        expectInvalid(Manifest(files: [file("empty", sizes: [0])]))
        expectInvalid(Manifest(files: [file("cancelled", sizes: [5, -5])]))
    }

    func expectInvalid(_ manifest: Manifest, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try manifest.validate()
            Issue.record("accepted an invalid manifest", sourceLocation: sourceLocation)
        } catch let error as RegistryError {
            #expect(error.code == .invalidManifest, sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct JSONValueTests {
    @Test func valuesRoundTripExactly() throws {
        let value: JSONValue = [
            "int": .number(42), "negative": .number(-7), "fraction": .number(0.125), "big": .number(1e20),
            "text": "héllo \"quoted\" / slash", "flag": .bool(false), "nothing": .null,
            "list": .array([.number(1), "two", .array([]), .object([:])]), "nested": ["deep": ["deeper": .bool(true)]],
        ]
        let bytes = try JSONCoding.encode(value)
        #expect(try JSONCoding.decode(JSONValue.self, from: bytes) == value)
        #expect(try JSONCoding.encode(try JSONCoding.decode(JSONValue.self, from: bytes)) == bytes)
    }

    @Test func integersStayIntegersAndKeysAreSorted() throws {
        let text = String(
            decoding: try JSONCoding.encode(["b": .number(3), "a": .number(1.5)] as JSONValue), as: UTF8.self)
        #expect(text == #"{"a":1.5,"b":3}"#)
    }

    @Test func encodableValuesConvertAndDecodeBack() throws {
        let source = VersionSource(runId: "r", dataset: nil, commit: "c", repository: nil)
        let value = try JSONValue(encoding: source)
        #expect(value["runId"] == "r")
        #expect(try value.decode(as: VersionSource.self) == source)
    }

    @Test func malformedInputIsMalformedJSON() {
        do {
            _ = try JSONCoding.decode(JSONValue.self, from: Array("{".utf8))
            Issue.record("accepted malformed JSON")
        } catch let error as RegistryError {
            #expect(error.code == .malformedJSON)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct PageTokenTests {
    @Test func tokensRoundTripTheirKey() throws {
        #expect(try PageToken.parse(PageToken.make("fraud-v2")) == "fraud-v2")
        #expect(try PageToken.parseInt(PageToken.make("42")) == 42)
        #expect(try PageToken.parse(nil) == nil)
        #expect(try PageToken.parse("") == nil)
    }

    @Test(arguments: ["not base64!", Data("x:raw".utf8).base64EncodedString()])
    func foreignTokensAreRejected(_ token: String) {
        do {
            _ = try PageToken.parse(token)
            Issue.record("accepted \(token)")
        } catch let error as RegistryError {
            #expect(error.code == .invalidPageToken)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func nonNumericKeysAreRejectedWhereNumbersAreExpected() {
        #expect(throws: RegistryError.self) { try PageToken.parseInt(PageToken.make("abc")) }
    }
}

@Suite(.timeLimit(.minutes(10))) struct TimestampTests {
    @Test func millisecondsSurviveStorageAndFormatting() throws {
        for ms: Int64 in [0, 1, 999, 1_700_000_000_123, 1_899_999_999_999, 1_234_567_890_001] {
            let date = Timestamp.fromMilliseconds(ms)
            #expect(Timestamp.milliseconds(date) == ms)
            #expect(Timestamp.parse(Timestamp.format(date)) == date)
        }
        #expect(Timestamp.format(Timestamp.fromMilliseconds(1_700_000_000_123)) == "2023-11-14T22:13:20.123Z")
    }
}
