import { defineConfig } from "vite";

// The build lands inside the Python package, so a wheel carries it and
// `aletheia ui` serves it without Node (make web).
export default defineConfig({
  base: "./",
  build: {
    outDir: "../aletheia/webui/dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
});
