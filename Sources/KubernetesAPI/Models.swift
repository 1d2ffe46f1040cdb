import FoundationEssentials

/// The fields of a Node that a DNS controller reads; everything else on the wire is skipped while decoding.
package struct Node: Sendable, Equatable {
    package struct Address: Sendable, Equatable {
        package var type: String
        package var address: String
    }
    package struct Taint: Sendable, Equatable {
        package var key: String
        package var effect: String
    }
    package struct Condition: Sendable, Equatable {
        package var type: String
        package var status: String
    }

    package var name: String
    package var uid: String
    package var resourceVersion: String
    package var labels: [String: String]
    package var unschedulable: Bool
    package var taints: [Taint]
    package var conditions: [Condition]
    package var addresses: [Address]
    /// `metadata.deletionTimestamp` is set: a finalizer holds the Node while it goes away.
    package var deleting: Bool
    /// Only the annotation the decoder was asked for (`CodingUserInfoKey.nodeAnnotation`); the rest are not read.
    package var annotations: [String: String]

    package init(
        name: String, uid: String = "", resourceVersion: String = "", labels: [String: String] = [:],
        unschedulable: Bool = false, taints: [Taint] = [], conditions: [Condition] = [], addresses: [Address] = [],
        deleting: Bool = false, annotations: [String: String] = [:]
    ) {
        self.annotations = annotations
        self.name = name
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = labels
        self.unschedulable = unschedulable
        self.taints = taints
        self.conditions = conditions
        self.addresses = addresses
        self.deleting = deleting
    }
}

extension Node: WatchedObject {}

/// Strict where it matters, tolerant where the API is: unknown fields are skipped and an absent optional field is
/// absent, but a field of the wrong type (null included) is a malformed answer, never a node without that field
/// (which would "have no address" and leave DNS). Unknown enum values (a new taint effect) are kept as text.
extension Node: Decodable {
    private struct Metadata: Decodable {
        var name: String
        var uid: String?
        var resourceVersion: String?
        var labels: [String: String]?
        var deletionTimestamp: String?
        var annotations: [String: String] = [:]
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            name = try container.decode(String.self, forKey: .name)
            uid = try container.strictIfPresent(String.self, forKey: .uid)
            resourceVersion = try container.strictIfPresent(String.self, forKey: .resourceVersion)
            labels = try container.strictIfPresent([String: String].self, forKey: .labels)
            deletionTimestamp = try container.strictIfPresent(String.self, forKey: .deletionTimestamp)
            // One annotation, when asked for: the others (some carry kilobytes of JSON) are skipped unread.
            if let wanted = decoder.userInfo[.nodeAnnotation] as? String, container.contains(.annotations),
                try !container.decodeNil(forKey: .annotations)
            {
                let all = try container.nestedContainer(keyedBy: AnyKey.self, forKey: .annotations)
                if let value = try all.strictIfPresent(String.self, forKey: AnyKey(stringValue: wanted)) {
                    annotations[wanted] = value
                }
            }
        }
        enum Key: String, CodingKey { case name, uid, resourceVersion, labels, deletionTimestamp, annotations }
    }
    /// A key known only at run time (an annotation's).
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    private struct RawAddress: Decodable {
        var type: String
        var address: String
    }
    private struct RawTaint: Decodable {
        var key: String
        var effect: String?
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            key = try container.decode(String.self, forKey: .key)
            effect = try container.strictIfPresent(String.self, forKey: .effect)
        }
        enum Key: String, CodingKey { case key, effect }
    }
    private struct RawCondition: Decodable {
        var type: String
        var status: String
    }
    private struct Spec: Decodable {
        var unschedulable: Bool?
        var taints: [RawTaint]?
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            unschedulable = try container.strictIfPresent(Bool.self, forKey: .unschedulable)
            taints = try container.strictIfPresent([RawTaint].self, forKey: .taints)
        }
        enum Key: String, CodingKey { case unschedulable, taints }
    }
    private struct Status: Decodable {
        var conditions: [RawCondition]?
        var addresses: [RawAddress]?
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            conditions = try container.strictIfPresent([RawCondition].self, forKey: .conditions)
            addresses = try container.strictIfPresent([RawAddress].self, forKey: .addresses)
        }
        enum Key: String, CodingKey { case conditions, addresses }
    }
    private enum Key: String, CodingKey { case metadata, spec, status }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let metadata = try container.decode(Metadata.self, forKey: .metadata)
        guard !metadata.name.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .metadata, in: container, debugDescription: "node without metadata.name")
        }
        let spec = try container.strictIfPresent(Spec.self, forKey: .spec)
        let status = try container.strictIfPresent(Status.self, forKey: .status)
        self.init(
            name: metadata.name, uid: metadata.uid ?? "", resourceVersion: metadata.resourceVersion ?? "",
            labels: metadata.labels ?? [:], unschedulable: spec?.unschedulable ?? false,
            taints: (spec?.taints ?? []).map { Taint(key: $0.key, effect: $0.effect ?? "") },
            conditions: (status?.conditions ?? []).map { Condition(type: $0.type, status: $0.status) },
            addresses: (status?.addresses ?? []).map { Address(type: $0.type, address: $0.address) },
            deleting: !(metadata.deletionTimestamp ?? "").isEmpty, annotations: metadata.annotations)
    }
}

extension CodingUserInfoKey {
    /// The one Node annotation to read (a String); without it, a Node's annotations are not read at all.
    package static let nodeAnnotation = CodingUserInfoKey(rawValue: "kube-node-dns.node-annotation")!
}

extension KeyedDecodingContainer {
    /// An optional field read strictly: absent is nil, but null or a value of another type is a decoding error.
    func strictIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(
                T.self, .init(codingPath: codingPath + [key], debugDescription: "null where a \(T.self) belongs"))
        }
        return try decode(T.self, forKey: key)
    }
}

/// A Lease's spec and the resourceVersion that guards its update.
package struct Lease: Sendable, Equatable {
    package var name: String
    package var namespace: String
    package var resourceVersion: String?
    package var holderIdentity: String?
    package var leaseDurationSeconds: Int?
    package var acquireTime: String?
    package var renewTime: String?
    package var leaseTransitions: Int?

    package init(
        name: String, namespace: String, resourceVersion: String? = nil, holderIdentity: String?,
        leaseDurationSeconds: Int?, acquireTime: String?, renewTime: String?, leaseTransitions: Int?
    ) {
        self.name = name
        self.namespace = namespace
        self.resourceVersion = resourceVersion
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }
}

extension Lease: Codable {
    private struct Metadata: Codable {
        var name: String?
        var namespace: String?
        var resourceVersion: String?
        init(name: String?, namespace: String?, resourceVersion: String?) {
            self.name = name
            self.namespace = namespace
            self.resourceVersion = resourceVersion
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.strictIfPresent(String.self, forKey: .name)
            namespace = try container.strictIfPresent(String.self, forKey: .namespace)
            resourceVersion = try container.strictIfPresent(String.self, forKey: .resourceVersion)
        }
    }
    /// Read strictly (a field of the wrong type is a malformed answer); written with absent fields left out.
    private struct Spec: Codable {
        var holderIdentity: String?
        var leaseDurationSeconds: Int?
        var acquireTime: String?
        var renewTime: String?
        var leaseTransitions: Int?
        init(
            holderIdentity: String?, leaseDurationSeconds: Int?, acquireTime: String?, renewTime: String?, leaseTransitions: Int?
        ) {
            self.holderIdentity = holderIdentity
            self.leaseDurationSeconds = leaseDurationSeconds
            self.acquireTime = acquireTime
            self.renewTime = renewTime
            self.leaseTransitions = leaseTransitions
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            holderIdentity = try container.strictIfPresent(String.self, forKey: .holderIdentity)
            leaseDurationSeconds = try container.strictIfPresent(Int.self, forKey: .leaseDurationSeconds)
            acquireTime = try container.strictIfPresent(String.self, forKey: .acquireTime)
            renewTime = try container.strictIfPresent(String.self, forKey: .renewTime)
            leaseTransitions = try container.strictIfPresent(Int.self, forKey: .leaseTransitions)
        }
    }
    private enum Key: String, CodingKey { case apiVersion, kind, metadata, spec }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let metadata = try container.decode(Metadata.self, forKey: .metadata)
        let spec = try container.strictIfPresent(Spec.self, forKey: .spec)
        self.init(
            name: metadata.name ?? "", namespace: metadata.namespace ?? "", resourceVersion: metadata.resourceVersion,
            holderIdentity: spec?.holderIdentity, leaseDurationSeconds: spec?.leaseDurationSeconds,
            acquireTime: spec?.acquireTime, renewTime: spec?.renewTime, leaseTransitions: spec?.leaseTransitions)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode("coordination.k8s.io/v1", forKey: .apiVersion)
        try container.encode("Lease", forKey: .kind)
        try container.encode(Metadata(name: name, namespace: namespace, resourceVersion: resourceVersion), forKey: .metadata)
        try container.encode(
            Spec(
                holderIdentity: holderIdentity, leaseDurationSeconds: leaseDurationSeconds, acquireTime: acquireTime,
                renewTime: renewTime, leaseTransitions: leaseTransitions), forKey: .spec)
    }
}

/// Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`) to and from microseconds since the epoch.
package enum MicroTime {
    package static func format(micros: Int64) -> String {
        let seconds = Date(timeIntervalSince1970: TimeInterval(micros / 1_000_000))
        var style = Date.ISO8601FormatStyle()
        style.timeZone = .gmt
        let fraction = String(micros % 1_000_000)
        return String(seconds.formatted(style).dropLast()) + "." + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    package static func parse(_ text: String) -> Int64? {
        var base = text
        var fraction: Int64 = 0
        if let dot = text.firstIndex(of: ".") {
            let end = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) ?? text.endIndex
            let digits = String(text[text.index(after: dot)..<end].prefix(6))
            fraction = (Int64(digits) ?? 0) * (0..<(6 - digits.count)).reduce(1) { result, _ in result * 10 }
            base = String(text[..<dot]) + String(text[end...])
        }
        guard let date = try? Date(base, strategy: .iso8601) else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000 + fraction
    }

    package static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// The fields of a Pod that decide whether it serves on its node; everything else in the object is skipped.
package struct Pod: WatchedObject {
    package var name: String
    package var namespace: String
    package var uid: String
    package var resourceVersion: String
    package var labels: [String: String]
    /// `spec.nodeName`: the node the pod is bound to, nil before scheduling.
    package var nodeName: String?
    /// The `Ready` condition's status ("True", "False", ...), nil when absent.
    package var ready: String?
    /// `metadata.deletionTimestamp` is set: graceful termination has begun.
    package var terminating: Bool

    package init(
        name: String, namespace: String, uid: String = "", resourceVersion: String = "", labels: [String: String] = [:],
        nodeName: String? = nil, ready: String? = nil, terminating: Bool = false
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = labels
        self.nodeName = nodeName
        self.ready = ready
        self.terminating = terminating
    }

    private enum Key: String, CodingKey { case metadata, spec, status }
    private struct Metadata: Decodable {
        var name: String
        var namespace: String?
        var uid: String?
        var resourceVersion: String?
        var labels: [String: String]?
        var deletionTimestamp: String?
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            namespace = try container.strictIfPresent(String.self, forKey: .namespace)
            uid = try container.strictIfPresent(String.self, forKey: .uid)
            resourceVersion = try container.strictIfPresent(String.self, forKey: .resourceVersion)
            labels = try container.strictIfPresent([String: String].self, forKey: .labels)
            deletionTimestamp = try container.strictIfPresent(String.self, forKey: .deletionTimestamp)
        }
        enum CodingKeys: String, CodingKey { case name, namespace, uid, resourceVersion, labels, deletionTimestamp }
    }
    private struct Spec: Decodable {
        var nodeName: String?
        init(from decoder: any Decoder) throws {
            nodeName = try decoder.container(keyedBy: CodingKeys.self).strictIfPresent(String.self, forKey: .nodeName)
        }
        enum CodingKeys: String, CodingKey { case nodeName }
    }
    private struct Condition: Decodable {
        var type: String
        var status: String
    }
    private struct Status: Decodable {
        var conditions: [Condition]?
        init(from decoder: any Decoder) throws {
            conditions = try decoder.container(keyedBy: CodingKeys.self).strictIfPresent([Condition].self, forKey: .conditions)
        }
        enum CodingKeys: String, CodingKey { case conditions }
    }

    /// Strict, like Node: a field of the wrong type is a malformed answer, never a pod without that field.
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let metadata = try container.decode(Metadata.self, forKey: .metadata)
        let name = metadata.name
        guard !name.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .metadata, in: container, debugDescription: "pod without metadata.name")
        }
        let spec = try container.strictIfPresent(Spec.self, forKey: .spec)
        let status = try container.strictIfPresent(Status.self, forKey: .status)
        self.init(
            name: name, namespace: metadata.namespace ?? "", uid: metadata.uid ?? "",
            resourceVersion: metadata.resourceVersion ?? "", labels: metadata.labels ?? [:],
            nodeName: spec?.nodeName.flatMap { $0.isEmpty ? nil : $0 },
            ready: status?.conditions?.first { $0.type == "Ready" }?.status,
            terminating: metadata.deletionTimestamp.map { !$0.isEmpty } ?? false)
    }
}
