// The node source named by the agent's configuration: kube (the default in a cluster), etcd or file.
//
// Each source is loaded only when chosen: the etcd client reads its gRPC .proto files from disk when it is
// loaded, and the Kubernetes client is large; neither should cost, or break, an agent that does not use it.
import type { NodeSource } from "../model";
import type { EtcdSourceOptions } from "./etcd";
import type { FileSourceOptions } from "./file";
import type { KubeSourceOptions } from "./kube";

export type { EtcdSourceOptions } from "./etcd";
export type { FileSourceOptions } from "./file";
export type { KubeSourceOptions } from "./kube";
export { SourceError, type SourceErrorCode } from "../errors";
export { DEFAULT_ETCD_PREFIX, DEFAULT_LEASE_TTL_SECONDS } from "./etcd-layout";
export { DEFAULT_ANNOTATION_PREFIX, FLANNEL_ANNOTATIONS } from "./kube-node";
export { isValidNodeName, parseMac, parsePublicIp, validateNodes, type NodeRecord, type NodeRejection } from "./validate";

export type NodeSourceKind = "kube" | "etcd" | "file";

export type NodeSourceOptions =
  | ({ kind: "kube" } & KubeSourceOptions)
  | ({ kind: "etcd" } & EtcdSourceOptions)
  | ({ kind: "file" } & FileSourceOptions);

export async function createNodeSource(options: NodeSourceOptions): Promise<NodeSource> {
  switch (options.kind) {
    case "kube": {
      const { KubeSource } = await import("./kube");
      return new KubeSource(options);
    }
    case "etcd": {
      const { EtcdSource } = await import("./etcd");
      return new EtcdSource(options);
    }
    case "file": {
      const { FileSource } = await import("./file");
      return new FileSource(options);
    }
  }
}
