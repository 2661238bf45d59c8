// CHECK: is the attachment still what ADD reported? Compares the kernel and the IPAM store with prevResult and
// names the first thing that differs.
import { cidrInside, parseCidr } from "../../native/addresses";
import { getLink, getLinkByIndex, listAddresses, listRoutes, NetlinkSocket, type Link } from "../../native/netlink";
import { withNetns } from "../../native/netns";
import { parseNetConf } from "../config";
import type { CniEnv } from "../env";
import { hostVethName } from "../host-veth";
import { listReservations } from "../ipam";
import { ipamCall, openStore } from "../network";
import { CniError, ErrorCode } from "../spec/errors";
import type { CniResult } from "../spec/result";
import { checkCommandAllowed } from "../spec/version";

function mismatch(what: string): CniError {
  return new CniError(ErrorCode.CheckFailed, `CHECK failed: ${what}`);
}

export function runCheck(env: CniEnv, stdin: Buffer): unknown {
  const conf = parseNetConf(stdin);
  checkCommandAllowed("CHECK", conf.cniVersion);
  const prev = conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "Invalid network config: CHECK needs prevResult");

  const podIndex = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  const expected = prev.interfaces[podIndex];
  if (!expected) throw mismatch(`prevResult has no interface ${env.ifname} in sandbox ${env.netns}`);
  const ips = prev.ips.filter((ip) => ip.interface === podIndex).map((ip) => ip.address);

  const { podLink, addresses, routes } = withNetns(env.netns, () => {
    const sock = NetlinkSocket.open();
    try {
      const link = getLink(sock, env.ifname);
      if (!link) throw mismatch(`interface ${env.ifname} does not exist in ${env.netns}`);
      return { podLink: link, addresses: listAddresses(sock, { index: link.index }), routes: listRoutes(sock, {}) };
    } finally {
      sock.close();
    }
  });

  if (expected.mac && expected.mac.toLowerCase() !== podLink.mac) {
    throw mismatch(`${env.ifname} has MAC ${podLink.mac}, prevResult says ${expected.mac}`);
  }
  if (!podLink.up) throw mismatch(`${env.ifname} is down`);
  const present = new Set(addresses.map((a) => a.cidr));
  for (const address of ips) {
    if (!present.has(normalizeCidr(address))) throw mismatch(`${env.ifname} lacks address ${address}`);
  }
  checkRoutes(ourRoutes(prev, ips), routes, podLink);
  checkHostSide(env, conf.bridge);
  checkReservations(env, ips, openStore(conf));
  return undefined;
}

function normalizeCidr(cidr: string): string {
  const parsed = parseCidr(cidr);
  return parsed ? `${parsed.address}/${parsed.prefixLength}` : cidr;
}

/**
 * The routes of prevResult that are ours: those via a gateway inside one of our addresses' subnets, and those
 * without a gateway. A plugin chained before weft lists its own routes too, via gateways on its own interfaces.
 */
function ourRoutes(prev: CniResult, ourAddresses: readonly string[]): CniResult["routes"] {
  const subnets = ourAddresses.map(parseCidr).filter((cidr) => cidr !== undefined);
  return prev.routes.filter((route) => {
    if (!route.gw) return true;
    return subnets.some((subnet) => {
      const gateway = parseCidr(`${route.gw}/${subnet.family === 4 ? 32 : 128}`);
      return gateway !== undefined && cidrInside(gateway, subnet);
    });
  });
}

function checkRoutes(expected: CniResult["routes"], routes: ReturnType<typeof listRoutes>, podLink: Link): void {
  for (const route of expected) {
    const dst = parseCidr(route.dst);
    const isDefault = dst?.prefixLength === 0;
    const found = routes.some(
      (r) =>
        (r.index === undefined || r.index === podLink.index) &&
        (isDefault ? r.dst === "default" || r.dst === route.dst : r.dst === dst?.network) &&
        (!route.gw || r.gateway === route.gw),
    );
    if (!found) throw mismatch(`route ${route.dst}${route.gw ? ` via ${route.gw}` : ""} is missing in the pod`);
  }
}

function checkHostSide(env: CniEnv, bridgeName: string): void {
  const sock = NetlinkSocket.open();
  try {
    const name = hostVethName(env.containerId, env.ifname);
    const hostVeth = getLink(sock, name);
    if (!hostVeth) throw mismatch(`host veth ${name} does not exist`);
    const bridge = hostVeth.masterIndex === undefined ? undefined : getLinkByIndex(sock, hostVeth.masterIndex);
    if (bridge?.name !== bridgeName) throw mismatch(`host veth ${name} is not attached to bridge ${bridgeName}`);
  } finally {
    sock.close();
  }
}

function checkReservations(env: CniEnv, addresses: readonly string[], store: ReturnType<typeof openStore>): void {
  const reservations = ipamCall(() => listReservations(store));
  for (const address of addresses) {
    const ip = parseCidr(address)?.address ?? address;
    const reservation = reservations.find((r) => r.ip === ip);
    if (!reservation || reservation.id !== env.containerId || (reservation.ifname ?? env.ifname) !== env.ifname) {
      throw mismatch(`IP ${ip} is not reserved for ${env.containerId}/${env.ifname} in the IPAM store`);
    }
  }
}
