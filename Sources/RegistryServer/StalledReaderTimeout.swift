import NIOCore

/// Closes a connection whose client has stopped reading its response for `timeout`.
///
/// Hummingbird's idle timeout does not run while a response is being written, so a client that asks for a large blob
/// and then never reads held its connection (one slot of the connection cap) forever: a few hundred of them stopped
/// the data port as idle sockets did. This handler watches only a connection whose writes are held back (the channel
/// is not writable): whenever the bytes it buffers change, the kernel took some, so the client is reading and the
/// clock starts again; when they stay the same for `timeout`, the connection is closed. A slow download that makes
/// progress is never cut, and a long-poll writes nothing while it waits, so it is never affected either.
///
/// The kernel takes more of the buffered bytes only once a good part of its send buffer has drained, which a slow
/// client may need longer than `timeout` for; so on Linux the kernel is asked too (`TCP_INFO`): data it sent to the
/// client within `timeout` also counts as reading.
final class StalledReaderTimeout: ChannelInboundHandler, RemovableChannelHandler {
    // Reads pass through untouched (they are Hummingbird's HTTP request parts).
    typealias InboundIn = Any
    typealias InboundOut = Any

    let timeout: TimeAmount
    /// The bytes buffered at the last check, and when they last changed; nil while the channel is writable.
    private var watch: (buffered: Int, since: NIODeadline)?
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stop()
        } else if watch == nil {
            watch = (Self.bufferedBytes(context), .now())
            schedule(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func stop() {
        check?.cancel()
        check = nil
        watch = nil
    }

    /// Looks again a quarter of `timeout` later, so that a stall is noticed within 1.25 × `timeout`.
    private func schedule(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(in: .nanoseconds(max(timeout.nanoseconds / 4, 1_000_000))) {
            let (handler, context) = loopBound.value
            handler.look(context)
        }
    }

    private func look(_ context: ChannelHandlerContext) {
        guard let watch, context.channel.isActive, !context.channel.isWritable else {
            stop()
            return
        }
        let buffered = Self.bufferedBytes(context)
        if buffered != watch.buffered {
            self.watch = (buffered, .now())
        } else if NIODeadline.now() - watch.since >= timeout {
            closeUnlessTheKernelIsSending(context)
            return
        }
        schedule(context)
    }

    /// The buffer has not moved for `timeout`; on Linux the kernel still says whether it sent data recently (a slow
    /// client opens its window a little at a time, long before NIO may write again), elsewhere that is a stall.
    private func closeUnlessTheKernelIsSending(_ context: ChannelHandlerContext) {
        #if os(Linux)
            if let provider = context.channel as? any SocketOptionProvider {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let timeout = self.timeout
                provider.getTCPInfo().hop(to: context.eventLoop).whenComplete { result in
                    let (handler, context) = loopBound.value
                    guard handler.watch != nil else { return }
                    if case .success(let info) = result,
                        Int64(info.tcpi_last_data_sent) * 1_000_000 < timeout.nanoseconds
                    {
                        handler.watch = (Self.bufferedBytes(context), .now())
                        handler.schedule(context)
                    } else {
                        handler.stop()
                        context.close(promise: nil)
                    }
                }
                return
            }
        #endif
        stop()
        context.close(promise: nil)
    }

    private static func bufferedBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }
}
