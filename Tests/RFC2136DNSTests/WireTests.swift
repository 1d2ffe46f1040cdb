import Emulators
import Foundation
import Logging
import NodeDNSCore
import Testing

@testable import RFC2136DNS

@Suite struct WireTests {
    /// Names read with compression pointers, as servers write answers.
    @Test func compressedNamesAreExpanded() throws {
        // Header (1 question, 1 answer), question www.example.test A IN, answer with a pointer to offset 12.
        var bytes: [UInt8] = [0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]
        bytes += [3] + Array("www".utf8) + [7] + Array("example".utf8) + [4] + Array("test".utf8) + [0]
        bytes += [0, 1, 0, 1]
        bytes += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 120, 0, 4, 203, 0, 113, 9]
        let message = try DNSMessage(decoding: bytes)
        #expect(message.id == 0x1234 && message.isResponse && message.isAuthoritative)
        #expect(message.answers.first?.name == (try WireName("WWW.Example.test")))
        #expect(message.answers.first.flatMap { AddressData.decode($0.rdata) } == "203.0.113.9")
        #expect(message.answers.first?.ttl == 120)
    }

    @Test(arguments: [
        ([0xC0, 12] as [UInt8], "a compression pointer does not point backwards"),  // points at itself
        ([5, 0x61, 0x62] as [UInt8], "a label runs past the end"),
        ([0x80] as [UInt8], "unknown label type 2"),
        ([] as [UInt8], "a name runs past the end"),
    ])
    func malformedNamesAreRefusedWithAReason(tail: [UInt8], reason: String) {
        let bytes: [UInt8] = [0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0] + tail
        #expect(throws: MalformedMessage(reason)) { try DNSMessage(decoding: bytes) }
    }

    @Test(arguments: [
        ("203.0.113.10", [203, 0, 113, 10] as [UInt8]),
        ("2001:db8::4", [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [4]),
        ("2001:db8:0:0:1:0:0:1", [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]),
    ])
    func addressesRoundTrip(text: String, bytes: [UInt8]) {
        #expect(AddressData.encode(text) == bytes)
        #expect(AddressData.decode(bytes) == (try? IPAddress(parsing: text))?.description)
    }

    @Test func anUpdateHasTheRFC2136Layout() throws {
        let zone = try WireName("example.test")
        let name = try WireName("www.example.test")
        let message = DNSMessage.update(
            id: 7, zone: zone,
            prerequisites: [ResourceRecord(name: name, type: .a, rrClass: .none, ttl: 0, rdata: [])],
            updates: [ResourceRecord(name: name, type: .a, rrClass: .in, ttl: 120, rdata: [203, 0, 113, 1])])
        let bytes = message.encoded()
        // Opcode 5 in the header; ZOCOUNT 1, PRCOUNT 1, UPCOUNT 1, ADCOUNT 0; the zone section asks for SOA.
        #expect(bytes[2] == 5 << 3 && bytes[3] == 0)
        #expect(Array(bytes[4..<12]) == [0, 1, 0, 1, 0, 1, 0, 0])
        let decoded = try DNSMessage(decoding: bytes)
        #expect(decoded.questions.first?.type == DNSType.soa.rawValue)
        #expect(decoded.answers.first?.rrClass == DNSClass.none.rawValue && decoded.answers.first?.rdata == [])
        #expect(decoded.authority.first?.ttl == 120)
    }

    @Test func txtMarkersRoundTrip() throws {
        let strings = OwnershipMarker.strings(owner: "blue", values: ["A 203.0.113.2", "AAAA 2001:db8::1", "A 203.0.113.1"])
        let record = ResourceRecord(
            name: try WireName("_kube-node-dns.www.example.test"), type: .txt, rrClass: .in, ttl: 120,
            rdata: ResourceRecord.txtData(strings))
        let read = try #require(OwnershipMarker.read(record))
        #expect(read.owner == "blue")
        #expect(read.values == ["A 203.0.113.1", "A 203.0.113.2", "AAAA 2001:db8::1"])
        // The index packs labels into strings of at most 255 octets.
        let labels = Set((0..<200).map { "node-\($0)" })
        let index = OwnershipMarker.indexStrings(owner: "blue", template: "{node}.n.example.test", labels: labels)
        #expect(index.allSatisfy { $0.utf8.count <= 255 } && index.count > 2)
        let indexRecord = ResourceRecord(
            name: try WireName("_kube-node-dns-index.example.test"), type: .txt, rrClass: .in, ttl: 120,
            rdata: ResourceRecord.txtData(index))
        #expect(OwnershipMarker.readIndex(indexRecord)?.labels == labels)
    }

    /// What a server does with our signature: it verifies with the same secret, and its answer's MAC covers our
    /// request's MAC. Checked here by signing an answer the way RFC 8945 section 5.3 says a server does.
    @Test(arguments: TSIGKey.Algorithm.allCases)
    func signedAnswersVerifyAndTamperingIsCaught(algorithm: TSIGKey.Algorithm) throws {
        let key = try TSIGKey(name: "kube-node-dns", algorithm: algorithm, base64Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==")
        let request = DNSMessage.update(id: 99, zone: try WireName("example.test"), prerequisites: [], updates: [])
        let (_, requestMAC) = TSIG.sign(request, key: key, now: 1_000_000)
        var answer = DNSMessage(id: 99, flags: 0x8000 | DNSMessage.opcodeUpdate << 11)
        answer.questions = request.questions
        let unsigned = answer.encoded()
        let signed = TSIG.signAnswer(unsigned, requestMAC: requestMAC, key: key, timeSigned: 1_000_001, originalID: 99)
        try TSIG.verify(answer: signed, requestMAC: requestMAC, key: key, now: 1_000_002)
        var tampered = signed
        tampered[3] ^= 0x01  // the RCODE
        #expect(throws: TSIGError.badSignature) { try TSIG.verify(answer: tampered, requestMAC: requestMAC, key: key, now: 1_000_002) }
        #expect(throws: TSIGError.clockSkew) { try TSIG.verify(answer: signed, requestMAC: requestMAC, key: key, now: 1_000_900) }
        #expect(throws: TSIGError.unsigned) { try TSIG.verify(answer: unsigned, requestMAC: requestMAC, key: key, now: 1_000_002) }
    }

    /// What a signature does not cover is refused, never read (RFC 8945 section 4.2): a byte after the TSIG record,
    /// a TSIG record with a TTL or a class other than ANY.
    enum Unsigned: String, CaseIterable, Sendable {
        case aByteAfterTheTSIGRecord, theTSIGRecordsTTLSet, theTSIGRecordsClassIN

        func apply(to signed: [UInt8]) -> [UInt8] {
            switch self {
            case .aByteAfterTheTSIGRecord: signed + [0]
            case .theTSIGRecordsTTLSet: WireTests.settingTSIGField(signed, offsetFromName: 4, to: 1)
            case .theTSIGRecordsClassIN: WireTests.settingTSIGField(signed, offsetFromName: 3, to: 1)
            }
        }
    }

    @Test(arguments: Unsigned.allCases)
    func whatTheMACDoesNotCoverIsRefused(change: Unsigned) throws {
        let key = try TSIGKey(name: "kube-node-dns", algorithm: .hmacSHA256, base64Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==")
        let requestMAC = TSIG.sign(DNSMessage(id: 5, flags: 0), key: key, now: 1_000_000).mac
        let unsigned = DNSMessage(id: 5, flags: 0x8000 | DNSMessage.opcodeUpdate << 11).encoded()
        let signed = TSIG.signAnswer(unsigned, requestMAC: requestMAC, key: key, timeSigned: 1_000_000, originalID: 5)
        try TSIG.verify(answer: signed, requestMAC: requestMAC, key: key, now: 1_000_000)
        #expect(throws: TSIGError.badSignature, "\(change)") {
            try TSIG.verify(answer: change.apply(to: signed), requestMAC: requestMAC, key: key, now: 1_000_000)
        }
    }

    /// The signed answer with one byte of the TSIG record's fixed fields set: its class (3, the low byte) or TTL (4).
    static func settingTSIGField(_ signed: [UInt8], offsetFromName: Int, to value: UInt8) -> [UInt8] {
        var changed = signed
        let nameLength = (try? WireName("kube-node-dns"))?.wireLength ?? 0
        changed[12 + nameLength + offsetFromName] = value
        return changed
    }

    /// Answers that used to be read as something else, each found by a fuzzer or by the rule it broke; now refused.
    @Test(arguments: [
        // The tsig fuzzer: two bytes after the last record were ignored.
        ("bytes after the last record", [0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xA6, 0x48] as [UInt8], "2 bytes after the last record"),
        // A CNAME whose target name ends before its RDATA does: the byte after the name was silently dropped.
        (
            "a CNAME name shorter than its RDATA",
            [0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 0x61, 0, 0x7A] as [UInt8],
            "a CNAME record's name does not fill its RDATA"
        ),
    ])
    func malformedAnswersAreRefused(label: String, bytes: [UInt8], reason: String) {
        #expect(throws: MalformedMessage(reason), "\(label)") { try DNSMessage(decoding: bytes) }
    }

    /// RDATA with no text that writes it back is not read as a value: a TXT string that is not UTF-8 (it read with
    /// replacement characters), a CNAME label holding a dot (it read as two labels).
    @Test func rdataWithoutAFaithfulTextIsNotRead() {
        let notUTF8 = ResourceRecord(name: WireName(labels: []), type: .txt, rrClass: .in, ttl: 0, rdata: [2, 0xC3, 0x28])
        #expect(notUTF8.txtStrings == nil)
        #expect(RecordData.decode(.cname, [3, 0x61, 0x2E, 0x62, 4] + Array("test".utf8) + [0]) == nil)
        #expect(RecordData.decode(.cname, [1, 0x61, 4] + Array("test".utf8) + [0]) == "a.test")
    }

    @Test(arguments: ["", "not base64!", "===="])
    func aBadSecretIsAConfigurationError(secret: String) {
        #expect(throws: TSIGError.self) { try TSIGKey(name: "k", algorithm: .hmacSHA256, base64Secret: secret) }
    }
}
