// The sketch preparation of core.preparation.sketch_to_digit, step by step, in the page.
// TVSketch.sketchToDigit(rgba, width, height, k) -> Float32Array(28 * 28), a white digit on black
// in 0..1, or null when nothing is drawn. `rgba` is an ImageData's data; `k` is the constants'
// one definition (core.preparation.SKETCH), which the page reads from the model's description.
// Where Python rounds half to even, or PyTorch resizes with antialiasing, so does this port:
// otherwise the two would drift apart by a pixel now and then.
const TVSketch = (() => {
  // Python's round(): halves go to the even neighbour.
  function roundHalfEven(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // int(np.median(border)) of a channel's border rows and columns (corners count twice).
  function borderMedian(ch, w, h) {
    const hist = new Uint32Array(256);
    for (let x = 0; x < w; x++) { hist[ch[x]]++; hist[ch[(h - 1) * w + x]]++; }
    for (let y = 0; y < h; y++) { hist[ch[y * w]]++; hist[ch[y * w + w - 1]]++; }
    const n = 2 * w + 2 * h;  // always even
    const kth = (k) => {
      let seen = 0;
      for (let v = 0; v < 256; v++) { seen += hist[v]; if (seen > k) return v; }
      return 255;
    };
    return Math.floor((kth(n / 2 - 1) + kth(n / 2)) / 2);
  }

  // Ink strength: the largest distance of any channel from its background level, a transparent
  // canvas composited onto white first.
  function inkMap(rgba, w, h) {
    const n = w * h;
    let transparent = false;
    for (let i = 3; i < rgba.length; i += 4) if (rgba[i] < 255) { transparent = true; break; }
    const ink = new Uint8Array(n), ch = new Uint8Array(n);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < n; i++) {
        const v = rgba[4 * i + c];
        if (transparent) {
          const a = rgba[4 * i + 3];
          ch[i] = Math.floor((v * a + 255 * (255 - a)) / 255);
        } else ch[i] = v;
      }
      const bg = borderMedian(ch, w, h);
      for (let i = 0; i < n; i++) {
        const d = ch[i] > bg ? ch[i] - bg : bg - ch[i];
        if (d > ink[i]) ink[i] = d;
      }
    }
    return ink;
  }

  // The weights of PyTorch's antialiased bilinear resize (align_corners=False) for one axis.
  function aaWeights(inSize, outSize) {
    const scale = inSize / outSize;
    const support = scale >= 1 ? scale : 1;
    const invscale = scale >= 1 ? 1 / scale : 1;
    const taps = [];
    for (let i = 0; i < outSize; i++) {
      const center = scale * (i + 0.5);
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const w = new Float64Array(Math.max(xsize, 0));
      let total = 0;
      for (let j = 0; j < xsize; j++) {
        const t = Math.abs((j + xmin - center + 0.5) * invscale);
        w[j] = t < 1 ? 1 - t : 0;
        total += w[j];
      }
      if (total !== 0) for (let j = 0; j < xsize; j++) w[j] /= total;
      taps.push({ xmin, w });
    }
    return taps;
  }

  // F.interpolate(mode="bilinear", antialias=True, align_corners=False): width, then height.
  function resize(src, h, w, nh, nw) {
    let cur = src, cw = w;
    if (nw !== w) {
      const taps = aaWeights(w, nw), out = new Float32Array(h * nw);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < nw; x++) {
          const { xmin, w: wt } = taps[x];
          let s = 0;
          for (let j = 0; j < wt.length; j++) s += wt[j] * cur[y * cw + xmin + j];
          out[y * nw + x] = s;
        }
      }
      cur = out; cw = nw;
    }
    if (nh !== h) {
      const taps = aaWeights(h, nh), out = new Float32Array(nh * cw);
      for (let y = 0; y < nh; y++) {
        const { xmin, w: wt } = taps[y];
        for (let x = 0; x < cw; x++) {
          let s = 0;
          for (let j = 0; j < wt.length; j++) s += wt[j] * cur[(xmin + j) * cw + x];
          out[y * cw + x] = s;
        }
      }
      cur = out;
    }
    const out = cur === src ? Float32Array.from(src) : cur;
    for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]));
    return out;
  }

  // 2*area/perimeter of the mask t > 0.5 with a zero border around it: the mean stroke width.
  function strokeWidth(t, h, w) {
    const on = (y, x) => y >= 0 && y < h && x >= 0 && x < w && t[y * w + x] > 0.5;
    let area = 0, perimeter = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!on(y, x)) continue;
        area++;
        let inner = true;
        for (let dy = -1; dy <= 1 && inner; dy++) {
          for (let dx = -1; dx <= 1; dx++) if (!on(y + dy, x + dx)) { inner = false; break; }
        }
        if (!inner) perimeter++;
      }
    }
    return (2 * area) / Math.max(perimeter, 1);
  }

  // An n x n max (grow) or min (thin) filter with zeros outside the image.
  function filter(t, h, w, n, grow) {
    const r = n >> 1, out = new Float32Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let v = grow ? 0 : Infinity;
        for (let yy = y - r; yy <= y + r; yy++) {
          for (let xx = x - r; xx <= x + r; xx++) {
            const p = yy >= 0 && yy < h && xx >= 0 && xx < w ? t[yy * w + xx] : 0;
            v = grow ? Math.max(v, p) : Math.min(v, p);
          }
        }
        out[y * w + x] = v;
      }
    }
    return out;
  }

  function sketchToDigit(rgba, W, H, k) {
    const ink = inkMap(rgba, W, H);
    let count = 0, r0 = H, r1 = -1, c0 = W, c1 = -1;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (ink[y * W + x] <= k.ink_threshold) continue;
        count++;
        if (y < r0) r0 = y;
        if (y > r1) r1 = y;
        if (x < c0) c0 = x;
        if (x > c1) c1 = x;
      }
    }
    if (count < k.min_ink_pixels) return null;
    const h = r1 - r0 + 1, w = c1 - c0 + 1;
    if (Math.max(h, w) < k.min_extent * Math.min(H, W)) return null;  // a dot or a stray click
    const crop = new Float32Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) crop[y * w + x] = ink[(y + r0) * W + x + c0] / 255;
    }
    const scale = k.box / Math.max(h, w);
    const nh = Math.max(1, roundHalfEven(h * scale)), nw = Math.max(1, roundHalfEven(w * scale));
    let t = resize(crop, h, w, nh, nw);
    const width = strokeWidth(t, nh, nw);
    const grow = roundHalfEven(k.stroke_4x[0] - width), shrink = roundHalfEven(width - k.stroke_4x[1]);
    if (grow >= 2) t = filter(t, nh, nw, grow % 2 === 0 ? grow + 1 : grow, true);
    else if (shrink >= 3) t = filter(t, nh, nw, Math.min(shrink, k.max_thinning) | 1, false);

    let total = 0, sy = 0, sx = 0;
    for (let y = 0; y < nh; y++) {
      for (let x = 0; x < nw; x++) {
        const v = t[y * nw + x];
        total += v; sy += v * y; sx += v * x;
      }
    }
    const side = k.side, s = k.scale, out = side / s;
    const cy = total > 0 ? sy / total : nh / 2, cx = total > 0 ? sx / total : nw / 2;
    const top = Math.min(Math.max(roundHalfEven(side / 2 - cy), 0), side - nh);
    const left = Math.min(Math.max(roundHalfEven(side / 2 - cx), 0), side - nw);
    const big = new Float32Array(side * side);
    for (let y = 0; y < nh; y++) {
      for (let x = 0; x < nw; x++) big[(top + y) * side + left + x] = t[y * nw + x];
    }
    const digit = new Float32Array(out * out);
    for (let y = 0; y < out; y++) {
      for (let x = 0; x < out; x++) {
        let sum = 0;
        for (let dy = 0; dy < s; dy++) {
          for (let dx = 0; dx < s; dx++) sum += big[(s * y + dy) * side + s * x + dx];
        }
        digit[y * out + x] = sum / (s * s);
      }
    }
    return digit;
  }

  return { sketchToDigit, roundHalfEven };
})();

