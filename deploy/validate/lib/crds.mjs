// Hand-written schemas for the custom resources these manifests may contain. kubernetes-models has
// no models for CRDs, so each gets the fields we rely on: types, required fields, enums, and the
// complete list of allowed keys at every level we describe (unknown keys are errors, as for the
// built-in kinds). Levels marked `opaque` are not walked. Sources (upstream, not in this
// repository): the CRDs of cert-manager v1.18 (its deploy/crds/cert-manager.io_certificates.yaml)
// and prometheus-operator v0.84 (monitoring.coreos.com_servicemonitors.yaml, _podmonitors.yaml);
// extend the lists when those move.
import { suggest } from "./fields.mjs";

const str = { type: "string" };
const int = { type: "integer" };
const bool = { type: "boolean" };
const opaque = { type: "any" };
const strs = { type: "array", items: str };
const map = (values) => ({ type: "object", additional: values });
const obj = (props, required = []) => ({ type: "object", props, required });
const oneOf = (...values) => ({ type: "string", enum: values });
const goDuration = { type: "string", pattern: /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/ };
const promDuration = { type: "string", pattern: /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/ };
const labelSelector = obj({
  matchLabels: map(str),
  matchExpressions: { type: "array", items: obj({ key: str, operator: oneOf("In", "NotIn", "Exists", "DoesNotExist"), values: strs }, ["key", "operator"]) },
});
const secretKey = obj({ key: str, name: str, optional: bool }, ["key"]);

const keyUsages = oneOf(
  "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
  "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
  "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
  "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc");

const certificateSpec = obj(
  {
    secretName: str,
    secretTemplate: obj({ annotations: map(str), labels: map(str) }),
    issuerRef: obj({ name: str, kind: str, group: str }, ["name"]),
    commonName: str,
    literalSubject: str,
    dnsNames: strs,
    ipAddresses: strs,
    uris: strs,
    emailAddresses: strs,
    otherNames: { type: "array", items: obj({ oid: str, utf8Value: str }) },
    duration: goDuration,
    renewBefore: goDuration,
    renewBeforePercentage: int,
    revisionHistoryLimit: int,
    isCA: bool,
    usages: { type: "array", items: keyUsages },
    encodeUsagesInRequest: bool,
    signatureAlgorithm: oneOf("SHA256WithRSA", "SHA384WithRSA", "SHA512WithRSA", "ECDSAWithSHA256", "ECDSAWithSHA384", "ECDSAWithSHA512", "PureEd25519"),
    privateKey: obj({
      algorithm: oneOf("RSA", "ECDSA", "Ed25519"),
      encoding: oneOf("PKCS1", "PKCS8"),
      rotationPolicy: oneOf("Never", "Always"),
      size: int,
    }),
    subject: obj({
      organizations: strs, countries: strs, organizationalUnits: strs, localities: strs,
      provinces: strs, streetAddresses: strs, postalCodes: strs, serialNumber: str,
    }),
    keystores: opaque,
    additionalOutputFormats: { type: "array", items: obj({ type: oneOf("DER", "CombinedPEM") }, ["type"]) },
    nameConstraints: opaque,
  },
  ["secretName", "issuerRef"],
);

const relabel = obj({
  action: oneOf("replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
    "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
    "keepequal", "KeepEqual", "dropequal", "DropEqual"),
  modulus: int, regex: str, replacement: str, separator: str, sourceLabels: strs, targetLabel: str,
});

// Scrape endpoint fields shared by ServiceMonitor `endpoints` and PodMonitor `podMetricsEndpoints`.
const endpointFields = {
  port: str,
  targetPort: { type: "intOrString" },
  path: str,
  scheme: oneOf("http", "https", "HTTP", "HTTPS"),
  params: map(strs),
  interval: promDuration,
  scrapeTimeout: promDuration,
  honorLabels: bool,
  honorTimestamps: bool,
  trackTimestampsStaleness: bool,
  relabelings: { type: "array", items: relabel },
  metricRelabelings: { type: "array", items: relabel },
  filterRunning: bool,
  followRedirects: bool,
  enableHttp2: bool,
  noProxy: str,
  proxyUrl: str,
  proxyFromEnvironment: bool,
  proxyConnectHeader: opaque,
  tlsConfig: opaque,
  authorization: opaque,
  basicAuth: opaque,
  oauth2: opaque,
  bearerTokenSecret: secretKey,
};

// Spec fields shared by ServiceMonitor and PodMonitor.
const monitorFields = {
  selector: labelSelector,
  namespaceSelector: obj({ any: bool, matchNames: strs }),
  jobLabel: str,
  podTargetLabels: strs,
  sampleLimit: int,
  targetLimit: int,
  labelLimit: int,
  labelNameLengthLimit: int,
  labelValueLengthLimit: int,
  keepDroppedTargets: int,
  bodySizeLimit: str,
  scrapeClass: str,
  scrapeProtocols: strs,
  fallbackScrapeProtocol: str,
  scrapeClassicHistograms: bool,
  scrapeNativeHistograms: bool,
  convertClassicHistogramsToNHCB: bool,
  nativeHistogramBucketLimit: int,
  nativeHistogramMinBucketFactor: { type: "intOrString" },
  attachMetadata: obj({ node: bool }),
  selectorMechanism: oneOf("RelabelConfig", "RoleSelector"),
};

const serviceMonitorSpec = obj(
  {
    ...monitorFields,
    endpoints: { type: "array", items: obj({ ...endpointFields, bearerTokenFile: str }) },
    targetLabels: strs,
  },
  ["selector", "endpoints"],
);

const podMonitorSpec = obj(
  {
    ...monitorFields,
    podMetricsEndpoints: { type: "array", items: obj({ ...endpointFields, portNumber: int }) },
  },
  ["selector"],
);

/** apiVersion -> kind -> schema of `spec` (metadata is checked as ObjectMeta by the caller). */
export const crdSchemas = {
  "cert-manager.io/v1": { Certificate: certificateSpec },
  "monitoring.coreos.com/v1": { ServiceMonitor: serviceMonitorSpec, PodMonitor: podMonitorSpec },
};

const typeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);

/** Checks `value` against a schema above; pushes {path, message}. */
export function checkSchema(value, schema, at, out) {
  const t = typeOf(value);
  switch (schema.type) {
    case "any":
      return out;
    case "intOrString":
      if (t !== "integer" && t !== "string") out.push({ path: at, message: `must be an integer or a string, not ${t}` });
      return out;
    case "string":
      if (t !== "string") out.push({ path: at, message: `must be string, not ${t}` });
      else if (schema.enum && !schema.enum.includes(value))
        out.push({ path: at, message: `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}, not ${JSON.stringify(value)}` });
      else if (schema.pattern && !schema.pattern.test(value))
        out.push({ path: at, message: `${JSON.stringify(value)} does not match ${schema.pattern}` });
      return out;
    case "integer":
    case "boolean":
      if (t !== schema.type) out.push({ path: at, message: `must be ${schema.type}, not ${t}` });
      return out;
    case "array":
      if (t !== "array") out.push({ path: at, message: `must be array, not ${t}` });
      else value.forEach((v, i) => checkSchema(v, schema.items, `${at}[${i}]`, out));
      return out;
    case "object":
      if (t !== "object") {
        out.push({ path: at, message: `must be object, not ${t}` });
        return out;
      }
      for (const r of schema.required || [])
        if (!(r in value)) out.push({ path: at, message: `must have required property '${r}'` });
      for (const [k, v] of Object.entries(value)) {
        const p = `${at}.${k}`;
        if (schema.props && k in schema.props) checkSchema(v, schema.props[k], p, out);
        else if (schema.additional) checkSchema(v, schema.additional, p, out);
        else {
          const hint = suggest(k, Object.keys(schema.props || {}));
          out.push({ path: p, message: `unknown field "${k}"${hint ? ` (did you mean "${hint}"?)` : ""}` });
        }
      }
      return out;
    default:
      throw new Error(`bad schema type ${schema.type}`);
  }
}
