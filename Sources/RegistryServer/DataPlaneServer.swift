import Hummingbird
import NIOPosix
import ServiceLifecycle

/// The data-plane server, on event loops of its own so that large transfers never delay the control plane; the
/// threads live exactly as long as the server runs.
struct DataPlaneServer: Service {
    let threads: Int
    /// Builds the server on the given event loops.
    let build: @Sendable (EventLoopGroupProvider) throws -> any ApplicationProtocol

    func run() async throws {
        let eventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await build(.shared(eventLoopGroup)).run()
        } catch {
            try? await eventLoopGroup.shutdownGracefully()
            throw error
        }
        try await eventLoopGroup.shutdownGracefully()
    }
}
