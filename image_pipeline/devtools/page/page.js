// The local page: one card per upload showing what its document says, as it changes.
// Two modes: live (served by `dev`: pick a route, drop or choose images, watch their documents) and snapshot (the
// demo's index.html: one card drawn from an embedded document, its images from files beside the page).
// Needs hashes.js (thumbHashToDataURL, blurHashToDataURL) loaded first.
"use strict";

(function () {
  const TERMINAL = new Set(["complete", "failed"]);
  const POLL_MS = 300;
  const POLL_LIMIT_MS = 10 * 60 * 1000;
  const FORMAT_ORDER = ["avif", "webp", "png", "jpeg"]; // smallest to most widely supported
  const SIZES = "(max-width: 760px) 100vw, 560px"; // the result column's width, for choosing from srcset

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  }

  function size(bytes) {
    if (typeof bytes !== "number") return "? bytes";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  }

  function fieldValue(document, path) {
    return path.split(".").reduce((value, part) => (value && typeof value === "object" ? value[part] : undefined), document);
  }

  function rank(format) {
    const index = FORMAT_ORDER.indexOf(format);
    return index < 0 ? FORMAT_ORDER.length : index;
  }

  function fileName(url) {
    const path = decodeURIComponent(String(url).split("?")[0]);
    return path.slice(path.lastIndexOf("/") + 1);
  }

  // The variants by area, largest first; the largest is what the app shows.
  function variantsBySize(manifest) {
    return Object.entries(manifest.variants || {}).sort(([, a], [, b]) => b.width * b.height - a.width * a.height);
  }

  function primaryFormat(variant) {
    const formats = variant.formats || {};
    return Object.keys(formats).find((name) => formats[name].url === variant.url) || Object.keys(formats)[0];
  }

  // The image's shape, as wide as the column but no taller than most of the window (a portrait photo stays whole)
  // and never wider than the image itself.
  function frameShape(width, height) {
    return `aspect-ratio: ${width} / ${height}; width: min(100%, ${width}px, calc(70vh * ${width} / ${height}))`;
  }

  function placeholderImage(placeholder, width, height) {
    if (placeholder.thumbhash) return { kind: "thumbhash", url: thumbHashToDataURL(placeholder.thumbhash) };
    if (placeholder.blurhash) return { kind: "blurhash", url: blurHashToDataURL(placeholder.blurhash, width, height) };
    return null;
  }

  // The image as an app shows it: the placeholder painted in the frame first, the <picture> fading in over it.
  function resultFrame(manifest) {
    const [[name, largest]] = variantsBySize(manifest);
    const frame = el("div", { class: "frame", style: frameShape(largest.width, largest.height) });
    const placeholder = manifest.placeholder || {};
    if (placeholder.dominantColor) frame.style.backgroundColor = placeholder.dominantColor;
    const drawn = placeholderImage(placeholder, largest.width, largest.height);
    if (drawn) {
      frame.style.backgroundImage = `url("${drawn.url}")`;
      frame.dataset.placeholder = drawn.kind;
    }
    frame.dataset.placeholderAt = String(performance.now());
    // Newer formats as <source>s, smallest first; the most widely supported one in the <img> as the fallback.
    const srcset = manifest.srcset || {};
    const formats = Object.keys(srcset).sort((a, b) => rank(a) - rank(b));
    const fallback = formats.pop() || primaryFormat(largest);
    const picture = el("picture");
    for (const format of formats) {
      const type = (largest.formats[format] || {}).contentType || `image/${format}`;
      picture.append(el("source", { type, srcset: srcset[format], sizes: SIZES }));
    }
    const image = el("img", {
      src: (largest.formats[fallback] || largest).url, srcset: srcset[fallback], sizes: SIZES,
      width: largest.width, height: largest.height, alt: `${name} variant`, decoding: "async",
    });
    const shown = el("figcaption", { text: "loading …" });
    image.addEventListener("load", () => {
      // Whether the placeholder was already painted when the image arrived: what a person saw first.
      image.dataset.placeholderBefore = frame.style.backgroundImage.startsWith("url(") ? "yes" : "no";
      image.dataset.loadedAt = String(performance.now());
      image.classList.add("loaded");
      // naturalWidth of a srcset image is scaled by the chosen candidate's density: the file's own size is read
      // from a plain copy of it (already in the cache).
      const file = new Image();
      file.src = image.currentSrc;
      file.decode().then(() => {
        image.dataset.pixels = `${file.naturalWidth}x${file.naturalHeight}`;
        shown.replaceChildren(el("b", { text: "Shown: " }), `${fileName(image.currentSrc)} · `,
          `${file.naturalWidth}×${file.naturalHeight} pixels, chosen by the browser from srcset for this column`);
      });
    });
    picture.append(image);
    frame.append(picture);
    const settled = new Promise((resolve) => {
      image.addEventListener("load", resolve);
      image.addEventListener("error", resolve);
    });
    return { nodes: [frame, shown], settled };
  }

  function originalFigure(info, source) {
    const facts = source && source.width
      ? `${source.format} ${source.width}×${source.height} · ${size(source.bytes)} · ${source.contentType}`
      : source ? `${size(source.bytes)} · ${source.contentType}` : "";
    const image = info.originalUrl ? el("img", { src: info.originalUrl, alt: "the original" }) : null;
    image?.addEventListener("error", () => image.replaceWith(el("div", { class: "unviewable", text: "not viewable in this browser" })));
    return el("figure", { class: "original" }, image,
      el("figcaption", {}, el("b", { text: "Original " }), info.originalName || "", el("br"), facts));
  }

  function failureBox(error) {
    return el("div", { class: "failure" },
      el("code", { class: "error-code", text: error.code || "error" }), " ",
      el("span", { class: "error-message", text: error.message || String(error) }));
  }

  function placeholdersSection(placeholder, width, height) {
    const ratio = `aspect-ratio: ${width} / ${height}`;
    const tiles = [el("figure", {},
      el("div", { class: "tile swatch", style: `${ratio}; background-color: ${placeholder.dominantColor}` }),
      el("figcaption", {}, "dominant colour ", el("code", { text: placeholder.dominantColor })))];
    if (placeholder.thumbhash) tiles.push(el("figure", { title: placeholder.thumbhash },
      el("div", { class: "tile", style: `${ratio}; background-image: url("${thumbHashToDataURL(placeholder.thumbhash)}")` }),
      el("figcaption", { text: `ThumbHash · ${atob(placeholder.thumbhash).length} bytes` })));
    if (placeholder.blurhash) tiles.push(el("figure", { title: placeholder.blurhash },
      el("div", { class: "tile", style: `${ratio}; background-image: url("${blurHashToDataURL(placeholder.blurhash, width, height)}")` }),
      el("figcaption", { text: `BlurHash · ${placeholder.blurhash.length} characters` })));
    return [el("h3", { text: "Placeholders" }), el("div", { class: "placeholders" }, tiles)];
  }

  // The variants' images load once the main image has: one already in the cache would be preferred over the
  // srcset candidate the browser would otherwise choose.
  function variantsSection(manifest, settled) {
    const figures = variantsBySize(manifest).reverse().map(([name, variant]) => el("figure", { class: "variant" },
      variantImage(name, variant, settled),
      el("figcaption", {}, el("b", { text: name }), ` ${variant.width}×${variant.height}`,
        variant.sameAs ? ` · same as ${variant.sameAs}` : "",
        el("ul", { class: "formats" }, Object.entries(variant.formats || { [primaryFormat(variant)]: variant })
          .map(([format, stored]) => el("li", {},
            el("a", { href: stored.url, target: "_blank", text: format }),
            el("span", { text: `${size(stored.bytes)}${stored.sameAs ? ` (= ${stored.sameAs})` : ""}` })))))));
    return [el("h3", { text: "Variants" }), el("div", { class: "variants" }, figures)];
  }

  function variantImage(name, variant, settled) {
    const image = el("img", { width: variant.width, height: variant.height, alt: name });
    settled.then(() => { image.src = variant.url; });
    return image;
  }

  function cutoutSection(manifest) {
    if (!("cutout" in manifest)) return [];
    const cutout = manifest.cutout;
    let text = manifest.status === "failed" ? "not made (the upload failed)" : "pending";
    if (cutout && cutout.applied) text = `applied · ${cutout.model} · subject covers ${Math.round(cutout.coverage * 100)}%`;
    else if (cutout) text = `not applied: ${cutout.reason}`;
    return [el("h3", { text: "Background removal" }), el("p", { class: "cutout", text })];
  }

  class Card {
    constructor(container, info) {
      this.info = info;
      this.started = performance.now();
      this.seen = [];
      this.shownKey = null;
      this.status = el("span", { class: "status" });
      this.timeline = el("span", { class: "timeline" });
      this.where = el("span", { class: "where" });
      this.body = el("div", { class: "body" });
      this.root = el("article", { class: "card" }, el("div", { class: "card-head" }, this.status, this.where, this.timeline), this.body);
      container.prepend(this.root);
      this.describe();
      this.setStatus(info.status || "uploading");
      this.drawPending(null);
    }

    describe() {
      const info = this.info;
      this.where.replaceChildren(`route `, el("b", { text: info.route }), ` · ${info.object || ""}`,
        info.document ? ` → ${info.document} · ${info.field}` : "");
    }

    setStatus(status) {
      if (this.seen.length && this.seen[this.seen.length - 1].status === status) return;
      this.seen.push({ status, at: (performance.now() - this.started) / 1000 });
      this.status.textContent = status;
      this.status.dataset.status = status;
      this.timeline.textContent = this.seen.map((step) => `${step.status} ${step.at.toFixed(1)} s`).join(" → ");
    }

    uploaded(answer) {
      Object.assign(this.info, answer);
      this.describe();
      this.setStatus("uploaded");
    }

    failPage(message) {
      this.setStatus("failed");
      this.body.replaceChildren(originalFigure(this.info, null), failureBox({ code: "page", message }));
    }

    drawPending(source) {
      const shape = source && source.width ? frameShape(source.width, source.height) : frameShape(4, 3);
      this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, source),
        el("figure", { class: "result" }, el("div", { class: "frame working", style: shape }),
          el("figcaption", { text: "waiting for the function …" }))));
    }

    // Show the document; true once its manifest for this upload has settled.
    show(document) {
      const manifest = fieldValue(document || {}, this.info.field);
      const source = manifest && manifest.source;
      if (!manifest || (this.info.generation && String((source || {}).generation) !== String(this.info.generation))) {
        return false; // the document still holds nothing, or an earlier upload's result
      }
      this.setStatus(manifest.status);
      const key = JSON.stringify({ ...manifest, updatedAt: null });
      if (key !== this.shownKey) {
        this.shownKey = key;
        this.draw(manifest, document);
      }
      return TERMINAL.has(manifest.status);
    }

    draw(manifest, document) {
      if (manifest.status === "failed") {
        this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, manifest.source),
          el("figure", { class: "result" }, failureBox(manifest.error || {}))), ...cutoutSection(manifest));
      } else if (manifest.status !== "complete" || !variantsBySize(manifest).length) {
        this.drawPending(manifest.source);
        this.body.append(...cutoutSection(manifest));
      } else {
        const [[, largest]] = variantsBySize(manifest);
        const result = resultFrame(manifest);
        this.body.replaceChildren(
          el("div", { class: "pair" }, originalFigure(this.info, manifest.source), el("figure", { class: "result" }, result.nodes)),
          ...cutoutSection(manifest),
          ...(manifest.placeholder ? placeholdersSection(manifest.placeholder, largest.width, largest.height) : []),
          ...variantsSection(manifest, result.settled));
      }
      this.body.append(el("details", {}, el("summary", { text: `The document ${this.info.document || ""}` }),
        el("pre", { text: JSON.stringify(document, null, 2) })));
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function getJSON(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  }

  async function uploadAndWatch(cards, route, file) {
    const card = new Card(cards, {
      route: route.name, field: route.field, object: `${route.folder}/${file.name}`,
      originalUrl: URL.createObjectURL(file), originalName: file.name,
    });
    try {
      const query = `route=${encodeURIComponent(route.name)}&name=${encodeURIComponent(file.name)}`;
      const headers = { "Content-Type": file.type || "application/octet-stream" };
      card.uploaded(await getJSON(`/api/upload?${query}`, { method: "POST", headers, body: file }));
      const deadline = performance.now() + POLL_LIMIT_MS;
      while (performance.now() < deadline) {
        const answer = await getJSON(`/api/document?path=${encodeURIComponent(card.info.document)}`);
        if (card.show(answer.data)) return;
        await sleep(POLL_MS);
      }
      card.failPage("no result after 10 minutes: is the function running?");
    } catch (error) {
      card.failPage(error.message);
    }
  }

  async function live(picker, cards) {
    const select = document.getElementById("route");
    const info = document.getElementById("route-info");
    const input = document.getElementById("file");
    const drop = document.getElementById("drop");
    let config;
    try {
      config = await getJSON("/api/routes");
    } catch (error) {
      document.getElementById("page-error").textContent = `The page server did not answer: ${error.message}`;
      return;
    }
    for (const route of config.routes) select.append(el("option", { value: route.name, text: route.name }));
    const chosen = () => config.routes.find((route) => route.name === select.value);
    const explain = () => {
      const route = chosen();
      const seed = Object.entries(route.require).map(([path, value]) => `${path} = ${value}`).join(", ");
      info.replaceChildren(`uploads to gs://${config.bucket}/${route.folder}/<file> · document ${route.document} · field ${route.field} · `,
        route.missing === "create" ? "the function creates the document"
          : `the page creates the document first${seed ? ` (${seed})` : ""}`,
        ` · ${route.formats.join(", ")} · variants ${Object.keys(route.variants).join(", ")}`);
    };
    select.addEventListener("change", explain);
    explain();
    const take = (files) => {
      for (const file of files) uploadAndWatch(cards, chosen(), file);
    };
    drop.addEventListener("click", () => input.click());
    input.addEventListener("change", () => { take([...input.files]); input.value = ""; });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      take([...event.dataTransfer.files].filter((file) => file.size > 0));
    });
    picker.hidden = false;
  }

  // The demo's page: one upload's card, drawn from the document embedded in the page.
  function snapshot(data, cards) {
    const card = new Card(cards, { ...data.card, status: "uploaded" });
    card.show(data.fields);
    const manifest = fieldValue(data.fields, data.card.field) || {};
    card.timeline.textContent = manifest.updatedAt ? `updated ${manifest.updatedAt}` : "";
  }

  window.addEventListener("DOMContentLoaded", () => {
    const cards = document.getElementById("cards");
    const embedded = document.getElementById("snapshot");
    if (embedded) snapshot(JSON.parse(embedded.textContent), cards);
    else live(document.getElementById("picker"), cards);
  });
})();
