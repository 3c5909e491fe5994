import NIOCore

/// Holds a connection's close until the response bytes already written to it have reached the socket.
///
/// On graceful shutdown Hummingbird (2.28) quiesces each connection: it closes it once the last response is written
/// (`writeAndFlush` of the end, then `close`). A close fails every write NIO has not yet handed to the kernel, so a
/// client reading slowly lost the tail of its download — the end of a multi-gigabyte blob, cut off by a routine
/// restart. This handler sits before Hummingbird's connection state handler; when a full close arrives while the
/// channel still buffers bytes, it waits (checking every few milliseconds) until the buffer is empty, or until `limit`
/// passes for a peer that stopped reading. Writes pass through untouched, so it costs nothing per response.
final class DrainBeforeClose: ChannelOutboundHandler, RemovableChannelHandler {
    // Writes are never unwrapped (they are Hummingbird's HTTP response parts).
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    /// How long a close waits for a peer to read what was written.
    let limit: TimeAmount
    /// How often a deferred close looks at the buffer again.
    let interval: TimeAmount
    private var deferredClose: (mode: CloseMode, promise: EventLoopPromise<Void>?, deadline: NIODeadline)?

    init(limit: TimeAmount = .seconds(30), interval: TimeAmount = .milliseconds(5)) {
        self.limit = limit
        self.interval = interval
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, deferredClose == nil else {
            context.close(mode: mode, promise: promise)
            return
        }
        context.flush()
        guard Self.bufferedBytes(context) > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        deferredClose = (mode, promise, .now() + limit)
        check(context)
    }

    /// Closes once the channel buffers nothing (or the peer has had `limit` to read it); otherwise looks again later.
    private func check(_ context: ChannelHandlerContext) {
        guard let (mode, promise, deadline) = deferredClose else { return }
        if Self.bufferedBytes(context) == 0 || !context.channel.isActive || .now() >= deadline {
            deferredClose = nil
            context.close(mode: mode, promise: promise)
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: interval) {
            let (handler, context) = loopBound.value
            handler.check(context)
        }
    }

    private static func bufferedBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }
}
