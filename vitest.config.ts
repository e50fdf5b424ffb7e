import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Server tests bind real ports and share two cores with inference: run files one at a time.
    fileParallelism: false,
  },
});
