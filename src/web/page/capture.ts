/**
 * Where frames come from: the camera (getUserMedia) or a local video or image file, shown in the
 * page and grabbed as JPEG on demand.
 */

export interface FrameSource {
  /** What the page shows; frames are grabbed from it. */
  readonly element: HTMLVideoElement | HTMLImageElement;
  readonly width: number;
  readonly height: number;
  readonly label: string;
  stop(): void;
}

/** Longest side of an uploaded frame: a 1080p camera would otherwise send ~300 kB frames. */
const MAX_SIDE = 960;
const JPEG_QUALITY = 0.85;

export async function cameraSource(video: HTMLVideoElement): Promise<FrameSource> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this browser gives no camera access here (it needs https:// or http://localhost)");
  }
  // The rear camera on phones: the demo is a dashcam.
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: false,
  });
  video.srcObject = stream;
  await playing(video);
  const track = stream.getVideoTracks()[0];
  return {
    element: video,
    width: video.videoWidth,
    height: video.videoHeight,
    label: track?.label || "camera",
    stop() {
      for (const t of stream.getTracks()) t.stop();
      video.srcObject = null;
    },
  };
}

export async function fileSource(file: File, video: HTMLVideoElement, img: HTMLImageElement): Promise<FrameSource> {
  const url = URL.createObjectURL(file);
  if (file.type.startsWith("image/")) {
    img.src = url;
    await img.decode();
    return {
      element: img,
      width: img.naturalWidth,
      height: img.naturalHeight,
      label: file.name,
      stop() {
        img.removeAttribute("src");
        URL.revokeObjectURL(url);
      },
    };
  }
  video.src = url;
  video.loop = true;
  await playing(video);
  return {
    element: video,
    width: video.videoWidth,
    height: video.videoHeight,
    label: file.name,
    stop() {
      video.pause();
      video.removeAttribute("src");
      video.load();
      URL.revokeObjectURL(url);
    },
  };
}

async function playing(video: HTMLVideoElement): Promise<void> {
  video.muted = true;
  video.playsInline = true;
  await video.play();
  if (video.videoWidth === 0) {
    await new Promise<void>((resolve) => video.addEventListener("loadedmetadata", () => resolve(), { once: true }));
  }
}

/** Grabs the source's current picture as JPEG bytes (scaled down to MAX_SIDE). */
export class JpegGrabber {
  private readonly canvas = document.createElement("canvas");

  size(src: FrameSource): { width: number; height: number } {
    const scale = Math.min(1, MAX_SIDE / Math.max(src.width, src.height));
    return { width: Math.round(src.width * scale), height: Math.round(src.height * scale) };
  }

  async grab(src: FrameSource): Promise<Uint8Array> {
    const { width, height } = this.size(src);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx) throw new Error("no 2D canvas");
    ctx.drawImage(src.element, 0, 0, width, height);
    const blob = await new Promise<Blob | null>((resolve) => this.canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    if (!blob) throw new Error("the browser could not encode the frame");
    return new Uint8Array(await blob.arrayBuffer());
  }
}
