"""The storefront and the admin page in headless Chromium against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import API_KEY, Shop, artifacts_dir
from tests.server import running_server


def cards(page: Page):
    return page.locator("#grid > li.card")


def open_shop(page: Page, shop: Shop) -> None:
    page.goto(shop.base + "/")
    expect(page.locator("#results-title")).to_have_text("Catalog")
    expect(cards(page)).to_have_count(len(shop.catalog))


def search_with_photo(page: Page, photo: Path) -> None:
    page.set_input_files("#photo-input", str(photo))
    expect(page.locator("#results-title")).to_have_text("Products like your photo")
    expect(page.locator("#grid")).to_have_attribute("aria-busy", "false")


def test_catalog_grid_pages_and_alt_texts(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    first = cards(page).first
    expect(first.locator("img")).to_have_attribute("alt", shop.catalog[0]["title"])
    expect(first.locator(".title")).to_have_text(shop.catalog[0]["title"])
    expect(page.locator("#pager")).to_be_hidden()  # 16 products fit one page of 24
    assert page.evaluate("[...document.images].every((img) => img.alt.trim().length > 0)")
    expect(page.locator("#health")).to_have_text(f"{len(shop.catalog)} products in the catalog")


def test_photo_of_a_catalog_product_finds_it_first(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    target = shop.catalog[9]
    search_with_photo(page, shop.photo(target["sku"]))
    first = cards(page).first
    expect(first).to_have_attribute("data-sku", target["sku"])
    expect(first.locator(".score")).to_have_text("100% similar")
    expect(first.locator(".match")).to_have_text("Strong match")
    expect(page.locator("#no-match")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("products found")
    expect(page.locator("#preview-image")).to_be_visible()


# Records the text fields of every form the page posts (a request's multipart body holding a
# file is not visible to the test otherwise); the requests still go to the real server.
RECORD_FORMS = """
window.sentForms = [];
const realFetch = window.fetch;
window.fetch = (url, options = {}) => {
  if (options.body instanceof FormData) {
    const fields = [...options.body.entries()].filter(([, v]) => typeof v === "string");
    window.sentForms.push({ url: String(url), fields: Object.fromEntries(fields) });
  }
  return realFetch(url, options);
};
"""


def sent_crops(page: Page) -> list[str | None]:
    return page.evaluate(
        "window.sentForms.filter((f) => f.url === '/search').map((f) => f.fields.crop ?? null)"
    )


def test_crop_box_moves_with_the_keyboard_and_is_sent(page: Page, shop: Shop) -> None:
    page.add_init_script(RECORD_FORMS)
    open_shop(page, shop)
    search_with_photo(page, shop.photo(shop.catalog[0]["sku"]))
    box = page.locator("#crop-box")
    box.focus()
    page.keyboard.press("Shift+ArrowLeft")  # narrower by 2 %; releasing the key searches again
    page.keyboard.press("Shift+ArrowUp")  # lower by 2 %: the focus stayed on the box
    page.keyboard.press("ArrowRight")  # moved right by 2 %
    expect(box).to_have_attribute("style", "left: 2%; top: 0%; width: 98%; height: 98%;")
    expect(page.locator("#grid")).to_have_attribute("aria-busy", "false")
    assert sent_crops(page) == [
        None,  # the whole photo: no crop field
        "0.0000,0.0000,0.9800,1.0000",
        "0.0000,0.0000,0.9800,0.9800",
        "0.0200,0.0000,0.9800,0.9800",
    ]
    expect(page.locator("#results-title")).to_have_text("Products like your photo")
    expect(cards(page).first).to_be_visible()
    page.click("#crop-reset")
    expect(box).to_have_attribute("style", "left: 0%; top: 0%; width: 100%; height: 100%;")
    expect(page.locator("#grid")).to_have_attribute("aria-busy", "false")
    assert sent_crops(page)[-1] is None


def test_keyboard_alone_reaches_the_photo_picker_and_the_results(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    page.focus("#q")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if reached[-1] == "photo-input":
            break
    assert reached[-1] == "photo-input", reached
    outline = page.evaluate("getComputedStyle(document.querySelector('label[for=photo-input]')).outlineStyle")
    assert outline == "solid"  # the focused picker is visibly marked
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(shop.photo(shop.catalog[3]["sku"])))
    expect(page.locator("#results-title")).to_be_focused()  # the results are next for the keyboard
    expect(cards(page).first).to_have_attribute("data-sku", shop.catalog[3]["sku"])


def test_more_like_this(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    source = shop.catalog[2]
    cards(page).nth(2).get_by_role("button", name=f"More like this: {source['title']}").click()
    expect(page.locator("#results-title")).to_have_text(f"More like “{source['title']}”")
    expect(cards(page)).to_have_count(len(shop.catalog) - 1)  # every other product, itself left out
    assert source["sku"] not in cards(page).evaluate_all("(cs) => cs.map((c) => c.dataset.sku)")
    page.click("#back-to-catalog")
    expect(cards(page)).to_have_count(len(shop.catalog))


def test_category_filter_applies_to_catalog_and_photo_search(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    page.select_option("#category", "shoes")
    expect(cards(page)).to_have_count(4)
    assert set(page.locator("#grid .category").all_text_contents()) == {"shoes"}
    search_with_photo(page, shop.photo(shop.catalog[0]["sku"]))  # a dress, searched among shoes
    expect(cards(page)).to_have_count(4)
    assert set(page.locator("#grid .category").all_text_contents()) == {"shoes"}
    page.fill("#max-price", "0")
    page.locator("#max-price").dispatch_event("change")
    expect(page.locator("#status")).to_have_text("Nothing found. Try other filters.")


def test_text_search_box(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    page.fill("#q", "shoes")
    page.press("#q", "Enter")
    expect(page.locator("#results-title")).to_have_text("Results for “shoes”")
    expect(cards(page)).to_have_count(4)


def test_files_that_are_not_photos_show_the_apis_error(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    text = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"just some text\n" * 50}
    page.set_input_files("#photo-input", files=[text])
    status = page.locator("#status")
    expect(status).to_have_class("error")
    expect(status).to_have_text(
        "That file is not a photo we can read. Use a JPEG, PNG, WebP, GIF or BMP image."
    )
    expect(cards(page)).to_have_count(0)
    big = b"\xff\xd8\xff\xe0" + b"\0" * (11 * 1024 * 1024)  # over the 10 MB upload limit
    huge = {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": big}
    page.set_input_files("#photo-input", files=[huge])
    expect(status).to_contain_text("too large")


def test_a_busy_service_says_so(page: Page, shop: Shop, tiny_encoder_path: Path) -> None:
    """A server whose encoder queue answers nothing in time (a 1 ms wait) answers 503 with
    Retry-After; the page turns that into a wait-and-retry message."""
    with running_server(tiny_encoder_path, shop.store_copy, LOOKALIKE_REQUEST_TIMEOUT_S="0.001") as (base, _):
        page.goto(base + "/")
        expect(cards(page)).to_have_count(len(shop.catalog))
        page.set_input_files("#photo-input", str(shop.photo(shop.catalog[0]["sku"])))
        status = page.locator("#status")
        expect(status).to_have_text("The service is busy right now. Please try again in 1 second.")
        expect(status).to_have_class("error")


def test_admin_adds_edits_and_deletes_a_product(page: Page, shop: Shop) -> None:
    page.goto(shop.base + "/admin")
    expect(page.locator("#fact-products")).to_have_text(str(len(shop.catalog)))
    expect(page.locator("#fact-encoder")).to_contain_text("mobilenet_v3_small")
    expect(page.locator("#fact-device")).to_have_text("cpu")

    # Without a key the service refuses the write, and the page says why.
    form = page.locator("#add-form")
    form.get_by_label("SKU").fill("BROWSER-1")
    form.get_by_label("Title").fill("Corduroy trousers")
    form.get_by_label("Category").fill("pants")
    form.get_by_label("Price (€)").fill("49.5")
    form.get_by_label("Photos (one or more)").set_input_files([str(p) for p in shop.spare_photos[:2]])
    form.get_by_role("button", name="Add to the catalog").click()
    expect(page.locator("#add-status")).to_have_text("Enter the API key first (API key section).")

    page.fill("#api-key", API_KEY)
    page.click("#key-form button[type=submit]")
    assert page.evaluate("sessionStorage.getItem('lookalike-api-key')") == API_KEY
    assert page.evaluate("localStorage.length") == 0
    form.get_by_role("button", name="Add to the catalog").click()
    expect(page.locator("#add-status")).to_have_text("Added BROWSER-1 (id 17) with 2 photos.")
    expect(page.locator("#fact-products")).to_have_text(str(len(shop.catalog) + 1))

    # The shopper finds it by its photo.
    page.goto(shop.base + "/")
    search_with_photo(page, shop.spare_photos[1])
    expect(cards(page).first).to_have_attribute("data-sku", "BROWSER-1")

    # The admin edits it, then deletes it.
    page.goto(shop.base + "/admin")
    row = page.locator("#catalog tbody tr[data-sku='BROWSER-1']")
    row.get_by_role("button", name="Edit BROWSER-1").click()
    dialog = page.locator("#edit-dialog")
    dialog.get_by_label("Title").fill("Cord trousers, slim")
    dialog.get_by_label("Attributes (JSON)").fill('{"colour": "brown"}')
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(row.locator("td").nth(2)).to_have_text("Cord trousers, slim")
    expect(page.locator("#catalog-status")).to_have_text("Saved BROWSER-1.")
    stored = httpx.get(f"{shop.base}/products/17").json()
    assert stored["title"] == "Cord trousers, slim" and stored["attributes"] == {"colour": "brown"}
    assert stored["price"] == 49.5 and stored["category"] == "pants"

    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Delete BROWSER-1").click()
    expect(page.locator("#catalog-status")).to_have_text("Deleted BROWSER-1.")
    expect(row).to_have_count(0)
    assert httpx.get(f"{shop.base}/products/17").status_code == 404


def load_all_images(page: Page) -> None:
    """Scroll through the page so that lazy images load, then wait for every one of them."""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("() => [...document.images].every((img) => img.complete)")
    page.evaluate("window.scrollTo(0, 0)")


def test_screenshots_at_desktop_and_phone_width(page: Page, shop: Shop) -> None:
    """The two screenshots a person looks at; the phone layout never scrolls sideways."""
    out = artifacts_dir()
    open_shop(page, shop)
    search_with_photo(page, shop.photo(shop.catalog[5]["sku"]))
    load_all_images(page)
    page.screenshot(path=str(out / "storefront-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 812})
    expect(cards(page).first).to_be_visible()
    load_all_images(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(out / "storefront-phone.png"), full_page=True)
    page.goto(shop.base + "/admin")
    expect(page.locator("#catalog tbody tr").first).to_be_visible()
    load_all_images(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(out / "admin-phone.png"), full_page=True)
    for name in ("storefront-desktop.png", "storefront-phone.png", "admin-phone.png"):
        assert (out / name).stat().st_size > 10_000, name
