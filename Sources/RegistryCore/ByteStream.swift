import NIOCore

/// A pull-based stream of bytes: the producer reads only when the consumer asks, so memory stays bounded.
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    private let make: @Sendable () -> AsyncIterator

    /// Wraps any sendable sequence of buffers.
    public init<Base: AsyncSequence & Sendable>(_ base: Base) where Base.Element == ByteBuffer {
        make = {
            var iterator = base.makeAsyncIterator()
            return AsyncIterator { try await iterator.next() }
        }
    }

    /// A stream whose iterator calls `next` for each buffer until it returns nil.
    public init(makeNext: @escaping @Sendable () -> (() async throws -> ByteBuffer?)) {
        make = { AsyncIterator(next: makeNext()) }
    }

    public func makeAsyncIterator() -> AsyncIterator { make() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let nextBuffer: () async throws -> ByteBuffer?

        init(next: @escaping () async throws -> ByteBuffer?) { self.nextBuffer = next }

        public mutating func next() async throws -> ByteBuffer? { try await nextBuffer() }
    }

    /// A stream of the given buffers, for tests and small payloads.
    public static func buffers(_ buffers: [ByteBuffer]) -> ByteStream {
        ByteStream(makeNext: {
            var remaining = buffers[...]
            return { remaining.popFirst() }
        })
    }

    /// A stream of one buffer holding `bytes`.
    public static func bytes(_ bytes: some Sequence<UInt8>) -> ByteStream {
        buffers([ByteBuffer(bytes: Array(bytes))])
    }

    /// Collects the whole stream; only for bounded payloads such as manifests.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        for try await var buffer in self {
            guard result.readableBytes + buffer.readableBytes <= maxBytes else {
                throw RegistryError(.payloadTooLarge, "The body is larger than \(maxBytes) bytes.")
            }
            result.writeBuffer(&buffer)
        }
        return result
    }
}
