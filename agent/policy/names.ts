// The syntax Kubernetes requires of label keys, label values and port names, checked as the API server checks
// them (apimachinery's IsQualifiedName, IsValidLabelValue, IsValidPortName), so that a policy the API server
// would refuse is refused here too, with the same reading.

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PORT_NAME = /^[a-z0-9-]{1,15}$/;

/** A label key: "name" or "prefix/name", the prefix a DNS subdomain of at most 253 characters, the name at most 63. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf("/");
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) return false;
  }
  return name.length > 0 && name.length <= 63 && LABEL_NAME.test(name);
}

/** A label value: empty, or at most 63 characters of the label-name alphabet. */
export function isLabelValue(value: string): boolean {
  return value === "" || (value.length <= 63 && LABEL_NAME.test(value));
}

/**
 * A port name (an IANA service name): 1 to 15 lowercase letters, digits and "-", with at least one letter, no
 * "-" at either end and no "--".
 */
export function isPortName(name: string): boolean {
  return PORT_NAME.test(name) && /[a-z]/.test(name) && !name.startsWith("-") && !name.endsWith("-") && !name.includes("--");
}
