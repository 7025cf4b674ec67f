// An independent walk of Fastify's router for route-coverage tests: the full paths and methods rebuilt from
// `server.printRoutes({ commonPrefix: false })`, so a route registered outside any catalogue is still seen.

/** Every routed path with its methods, from Fastify's printed route tree. */
export function routesFromTree(tree: string): Array<{ url: string; methods: string[] }> {
  const out: Array<{ url: string; methods: string[] }> = [];
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const m = /^((?:│   |    )*)(?:├── |└── )(\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    const url = (stack[depth - 1] ?? "") + (m[2] as string);
    stack[depth] = url;
    if (m[3]) out.push({ url, methods: (m[3] as string).split(", ") });
  }
  return out;
}
