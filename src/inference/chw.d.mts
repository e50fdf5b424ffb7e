/** Writes interleaved RGB bytes (HWC) into a planar float 0..1 tensor (CHW); returns `out`. */
export function hwcToChw<T extends Float32Array>(rgb: Uint8Array, out: T, width: number, height: number): T;
