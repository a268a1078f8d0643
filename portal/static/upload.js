// The upload component (_upload.html) and image ordering on the bill page.
//
// Every dropped or picked file becomes a row with its own hidden htmx form, so each file is
// its own request with its own progress bar (htmx 2's htmx:xhr:progress) and its own answer:
// the server puts the result text in the row and appends the new image card to #image-list
// (out-of-band).  A refused file (413/415/422/409) keeps the server's message in its row.
//
// Files finish in any order (a small one overtakes a large one), but the scanner's pick order is
// the order of the paper: each file reserves a hidden slot at the end of #image-list when it is
// picked, its card lands in that slot, and when a batch finished out of order the page's order
// is saved, so the server keeps it too.
(function () {
  "use strict";

  var PARALLEL = 3; // enough to keep the line busy without one desk hogging the server
  var counter = 0;
  var landing = null; // the slot of the upload whose answer htmx is swapping right now

  // htmx swaps an answer's out-of-band card synchronously, between the form's beforeSwap and
  // afterSwap: send it to that upload's slot instead of the end of the list.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    if (landing && evt.detail.target && evt.detail.target.id === "image-list") evt.detail.target = landing;
  });

  function humanSize(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return Math.round(n / 1024) + " KB";
    return n + " B";
  }

  function hasFiles(evt) {
    var types = evt.dataTransfer && evt.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }

  function initUpload(panel) {
    var zone = panel.querySelector(".dropzone");
    var input = panel.querySelector("input[type=file][multiple]");
    var list = panel.querySelector(".upload-list");
    var template = panel.querySelector("template");
    var images = document.getElementById("image-list");
    var waiting = [], running = 0, finished = [];
    panel.classList.add("js");

    // The batch is over: if its cards came back in another order than picked, the server
    // numbered them by arrival; the page shows the picked order, so save that.
    function batchDone() {
      var outOfOrder = finished.some(function (n, i) { return i > 0 && n < finished[i - 1]; });
      finished = [];
      if (outOfOrder) saveOrder();
    }

    function pump() {
      while (running < PARALLEL && waiting.length) {
        var form = waiting.shift();
        running += 1;
        form.closest(".upload-row").setAttribute("data-state", "uploading");
        form.querySelector(".upload-state").textContent = "正在上传…";
        htmx.trigger(form, "upload-start");
      }
    }

    function addFile(file) {
      var row = template.content.firstElementChild.cloneNode(true);
      var form = row.querySelector("form");
      var bar = row.querySelector("progress");
      var state = row.querySelector(".upload-state");
      var id = "upload-" + (++counter);
      row.id = id;
      state.id = id + "-state";
      form.setAttribute("hx-target", "#" + state.id);
      row.querySelector(".upload-name").textContent = file.name;
      row.querySelector(".upload-name").title = file.name;
      row.querySelector(".upload-size").textContent = humanSize(file.size);
      var dt = new DataTransfer();
      dt.items.add(file);
      form.querySelector("input[type=file]").files = dt.files;
      var seq = counter, slot = null;
      if (images) {
        slot = document.createElement("div");
        slot.className = "image-slot";
        slot.hidden = true;
        images.appendChild(slot);
      }

      var uploaded = false, events = 0;
      form.addEventListener("htmx:xhr:progress", function (evt) {
        // htmx reports the upload and then the download of the answer; the bar shows the upload.
        if (uploaded || !evt.detail.lengthComputable || !evt.detail.total) return;
        events += 1;
        row.setAttribute("data-progress-events", String(events));
        bar.max = evt.detail.total;
        bar.value = evt.detail.loaded;
      });
      form.addEventListener("htmx:xhr:loadend", function () {
        if (uploaded) return;
        uploaded = true; // the first loadend is the upload's: the server now stores and recognises
        bar.value = bar.max;
        if (row.getAttribute("data-state") === "uploading") state.textContent = "正在识别…";
      });
      form.addEventListener("htmx:beforeSwap", function (evt) {
        // A refused file answers 4xx with its reason: show it in this row, not as a page error.
        var status = evt.detail.xhr.status;
        if (status >= 400 && status < 500) {
          evt.detail.shouldSwap = true;
          evt.detail.isError = false;
        }
        landing = slot;
      });
      form.addEventListener("htmx:afterSwap", function () { landing = null; });
      form.addEventListener("htmx:afterRequest", function (evt) {
        var xhr = evt.detail.xhr, status = xhr ? xhr.status : 0;
        var ok = status >= 200 && status < 300;
        row.setAttribute("data-state", ok ? "done" : "failed");
        if (ok) bar.value = bar.max;
        if (!status) state.textContent = "网络连接失败，未上传";
        else if (status >= 500) state.textContent = "服务器出错（" + status + "），请重试";
        landing = null;
        if (slot) {
          // The card takes the slot's place; a refused or already-present file leaves nothing.
          if (slot.firstElementChild) finished.push(seq);
          slot.replaceWith.apply(slot, Array.prototype.slice.call(slot.childNodes));
        }
        running -= 1;
        pump();
        if (!running && !waiting.length) batchDone();
      });

      list.appendChild(row);
      htmx.process(row);
      waiting.push(form);
    }

    function addFiles(files) {
      Array.prototype.forEach.call(files, addFile);
      pump();
    }

    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files);
      input.value = ""; // picking the same file again must fire change again
      addFiles(files);
    });
    zone.addEventListener("click", function (evt) {
      if (evt.target.closest("label")) return; // the label opens the picker itself
      input.click();
    });
    zone.addEventListener("keydown", function (evt) {
      if (evt.key === "Enter" || evt.key === " ") { evt.preventDefault(); input.click(); }
    });
    zone.addEventListener("dragover", function (evt) {
      if (!hasFiles(evt)) return;
      evt.preventDefault();
      evt.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (evt) {
      if (!hasFiles(evt)) return;
      evt.preventDefault();
      zone.classList.remove("over");
      addFiles(evt.dataTransfer.files);
    });
  }

  // A file dropped next to the zone must not make the browser leave the page to show it.
  document.addEventListener("dragover", function (evt) { if (hasFiles(evt)) evt.preventDefault(); });
  document.addEventListener("drop", function (evt) { if (hasFiles(evt)) evt.preventDefault(); });

  // ---------------------------------------------------------------- ordering (#image-list[data-reorder])

  function order(list) {
    return Array.prototype.map.call(list.querySelectorAll(":scope > .image-card"), function (c) { return c.id; }).join(",");
  }

  function saveOrder() {
    var sync = document.getElementById("image-order");
    if (sync) htmx.trigger(sync, "reorder");
  }

  function initOrdering(list) {
    list.addEventListener("click", function (evt) {
      var btn = evt.target.closest("[data-move]");
      if (!btn) return;
      var card = btn.closest(".image-card");
      if (btn.getAttribute("data-move") === "up" && card.previousElementSibling) {
        list.insertBefore(card, card.previousElementSibling);
      } else if (btn.getAttribute("data-move") === "down" && card.nextElementSibling) {
        list.insertBefore(card.nextElementSibling, card);
      } else {
        return;
      }
      btn.focus();
      saveOrder();
    });

    // Drag by the handle: the card only becomes draggable while the handle is held.
    var dragging = null, before = "";
    list.addEventListener("pointerdown", function (evt) {
      var card = evt.target.closest(".image-card");
      if (card) card.draggable = !!evt.target.closest(".drag-handle");
    });
    list.addEventListener("dragstart", function (evt) {
      var card = evt.target.closest && evt.target.closest(".image-card");
      if (!card || !card.draggable) return;
      dragging = card;
      before = order(list);
      evt.dataTransfer.effectAllowed = "move";
      evt.dataTransfer.setData("text/plain", card.id);
      card.classList.add("dragging");
    });
    list.addEventListener("dragover", function (evt) {
      if (!dragging) return;
      evt.preventDefault();
      var over = evt.target.closest(".image-card");
      if (!over || over === dragging) return;
      var box = over.getBoundingClientRect();
      list.insertBefore(dragging, evt.clientY > box.top + box.height / 2 ? over.nextElementSibling : over);
    });
    list.addEventListener("drop", function (evt) { if (dragging) evt.preventDefault(); });
    list.addEventListener("dragend", function () {
      if (!dragging) return;
      dragging.classList.remove("dragging");
      dragging.draggable = false;
      dragging = null;
      if (order(list) !== before) saveOrder();
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-upload]"), initUpload);
    Array.prototype.forEach.call(document.querySelectorAll("#image-list[data-reorder]"), initOrdering);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
