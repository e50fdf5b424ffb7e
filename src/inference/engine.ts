/** What the service needs to know about a loaded detection model, read from the model file. */
export interface ModelInfo {
  /** File the model was loaded from. */
  readonly path: string;
  /** Class names in class-id order (from ONNX metadata_props `names`, or metadata.yaml beside an IR). */
  readonly classNames: readonly string[];
  /** Native input size (from metadata `imgsz`, else the static input shape, else 640). */
  readonly inputWidth: number;
  readonly inputHeight: number;
  /** True when the model's H/W input dims are symbolic, so other sizes (multiples of `stride`) work. */
  readonly dynamicInputSize: boolean;
  /** True when the batch dim is symbolic. */
  readonly dynamicBatch: boolean;
  /** Largest stride of the network (metadata `stride`, default 32): dynamic sizes must be multiples of it. */
  readonly stride: number;
  /** Free-text description from metadata. */
  readonly description: string;
}

/** A tensor as the engines exchange it: float32, row-major. */
export interface Tensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Interleaved 8-bit RGB (HWC, 3 bytes a pixel), already letterboxed to the size the model runs at. */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

export interface RunOptions {
  /**
   * The caller gives up `input.data`: a backend running on another thread may take its buffer
   * without copying it, leaving the caller's array detached (empty). Without it the input is copied.
   */
  transferInput?: boolean;
  /**
   * Called when the run starts, after any wait for a free worker or infer request, so callers can
   * tell the wait (load) apart from the inference itself.
   */
  onStart?: () => void;
}

/**
 * One loaded model on one backend. Implementations never block the event loop: `run` resolves when
 * the backend's own threads are done.
 */
export interface InferenceEngine {
  readonly backend: "onnxruntime" | "openvino";
  /** Device the backend runs on, e.g. "cpu" or "AUTO". */
  readonly device: string;
  readonly model: ModelInfo;
  /** Runs it is worth having in flight at once (more only queue inside the backend). */
  readonly concurrency: number;
  /** Runs the model on an NCHW float32 RGB 0..1 input; returns the model's first output. */
  run(input: Tensor, options?: RunOptions): Promise<Tensor>;
  /**
   * The same on an RGB image: the backend makes the planar float tensor itself, off the event loop
   * and into memory it reuses, with the numbers `hwcToChw` gives. Backends without it get a tensor
   * made on the caller's thread.
   */
  runImage?(image: RgbImage, options?: RunOptions): Promise<Tensor>;
  close(): Promise<void>;
}
