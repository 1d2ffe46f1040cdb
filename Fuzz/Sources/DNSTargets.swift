import NIOCore
import NodeDNSCore
import RFC2136DNS

/// A DNS answer as any server could send it: a message that decodes re-encodes to one that decodes to the same
/// value, and the RDATA the provider reads (addresses, CNAME targets, TXT ownership markers) prints to text that
/// encodes back to the same RDATA.
@Sendable func fuzzDNSMessage(_ data: [UInt8]) {
    guard let message = try? DNSMessage(decoding: data) else { return }
    let encoded = message.encoded()
    let again: DNSMessage
    do {
        again = try DNSMessage(decoding: encoded)
    } catch {
        fatalError("property violated: a decoded message re-encodes to bytes that do not decode (\(error))")
    }
    require(sameMessage(message, again), "a decoded message re-encodes to a different message")
    require(again.encoded() == encoded, "encoding a message twice gives different bytes")
    for record in message.answers + message.authority + message.additional {
        let typed: [UInt16: RecordType] = [DNSType.a.rawValue: .a, DNSType.aaaa.rawValue: .aaaa, DNSType.cname.rawValue: .cname]
        if let type = typed[record.type], let text = RecordData.decode(type, record.rdata) {
            require(
                RecordData.encode(type, text) == record.rdata,
                "\(type) RDATA \(record.rdata) reads as \"\(text)\", which encodes differently")
        }
        if let strings = record.txtStrings {
            require(
                ResourceRecord.txtData(strings) == record.rdata, "TXT RDATA \(record.rdata) reads as \(strings), which encodes differently")
        }
        if let marker = OwnershipMarker.read(record) {
            let written = ResourceRecord(
                name: record.name, type: .txt, rrClass: .in, ttl: 0,
                rdata: ResourceRecord.txtData(OwnershipMarker.strings(owner: marker.owner, values: marker.values)))
            let reread = OwnershipMarker.read(written)
            require(reread?.owner == marker.owner && reread?.values == marker.values, "an ownership marker does not read back as written")
        }
    }
}

func sameMessage(_ lhs: DNSMessage, _ rhs: DNSMessage) -> Bool {
    lhs.id == rhs.id && lhs.flags == rhs.flags && lhs.questions.count == rhs.questions.count
        && zip(lhs.questions, rhs.questions).allSatisfy { $0.name == $1.name && $0.type == $1.type && $0.rrClass == $1.rrClass }
        && lhs.answers == rhs.answers && lhs.authority == rhs.authority && lhs.additional == rhs.additional
}

/// TSIG (RFC 8945): an answer signed as a server signs it verifies, and the same answer changed after signing (one
/// byte flipped, cut short, or with bytes appended) never does. The exceptions are the ones the RFC makes: the
/// header's message id (the MAC covers the original id), and the letter case of the key and algorithm names.
@Sendable func fuzzTSIG(_ data: [UInt8]) {
    var input = FuzzReader(data)
    let algorithm = TSIGKey.Algorithm.allCases[Int(input.byte()) % TSIGKey.Algorithm.allCases.count]
    let mutation = input.byte()
    let position = Int(input.byte()) << 8 | Int(input.byte())
    let flip = input.byte() | 1
    let body = input.rest()
    // The answer: the fuzzer's bytes when they are a message, else those bytes as the RDATA of one TXT answer.
    var unsigned: [UInt8]
    if let message = try? DNSMessage(decoding: body), message.additional.count < 0xFFFF {
        unsigned = body
    } else {
        var message = DNSMessage(id: 7, flags: 0x8000 | DNSMessage.opcodeUpdate << 11)
        message.answers = [
            ResourceRecord(
                name: WireName(labels: [Array("a".utf8), Array("test".utf8)]), type: .txt, rrClass: .in, ttl: 60,
                rdata: Array(body.prefix(60_000)))
        ]
        unsigned = message.encoded()
    }
    guard let key = try? TSIGKey(name: "kube-node-dns.", algorithm: algorithm, base64Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==")
    else { fatalError("the fuzzer's key does not load") }
    let requestMAC = TSIG.sign(DNSMessage(id: 7, flags: 0), key: key, now: 1_000_000).mac
    let originalID = UInt16(unsigned[0]) << 8 | UInt16(unsigned[1])
    let signed = TSIG.signAnswer(unsigned, requestMAC: requestMAC, key: key, timeSigned: 1_000_000, originalID: originalID)
    do {
        try TSIG.verify(answer: signed, requestMAC: requestMAC, key: key, now: 1_000_001)
    } catch {
        fatalError("property violated: an answer signed as a server signs it does not verify (\(error))")
    }
    var changed = signed
    var allowed = false
    switch mutation % 3 {
    case 0:
        let at = position % signed.count
        changed[at] ^= flip
        let byte = signed[at]
        let isLetter = (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        allowed = at < 2 || (at >= unsigned.count && flip == 0x20 && isLetter)
    case 1: changed.removeLast(1 + position % min(signed.count, 64))
    default: changed += Array(repeating: flip, count: 1 + position % 16)
    }
    if (try? TSIG.verify(answer: changed, requestMAC: requestMAC, key: key, now: 1_000_001)) != nil {
        require(allowed, "an answer changed after signing verified (mutation \(mutation % 3) at \(position % signed.count))")
    }
}

/// DNS over TCP: however the stream is cut, the frames are the messages its length prefixes say, in order, none
/// longer than 65,535 octets; what is held back is at most one unfinished frame.
@Sendable func fuzzDNSTCPFrames(_ data: [UInt8]) {
    var input = FuzzReader(data)
    let (stream, chunks) = input.restInChunks()
    var expected: [[UInt8]] = []
    var offset = 0
    while offset + 2 <= stream.count {
        let length = Int(stream[offset]) << 8 | Int(stream[offset + 1])
        guard offset + 2 + length <= stream.count else { break }
        expected.append(Array(stream[(offset + 2)..<(offset + 2 + length)]))
        offset += 2 + length
    }
    // As ByteToMessageHandler drives the decoder: the bytes so far in one buffer, frames taken while there are any.
    var buffer = ByteBuffer()
    var frames: [[UInt8]] = []
    for chunk in chunks {
        buffer.writeBytes(chunk)
        while let frame = LengthPrefixedFrameDecoder.nextFrame(in: &buffer) {
            frames.append(Array(frame.readableBytesView))
        }
        require(buffer.readableBytes <= 65_536 + 1, "\(buffer.readableBytes) bytes held back, more than one unfinished frame")
        buffer.discardReadBytes()
    }
    require(frames == expected, "the frames \(frames.map(\.count)) are not the stream's \(expected.map(\.count))")
}
