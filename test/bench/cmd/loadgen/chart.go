package main

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colAxis       = color.RGBA{60, 60, 60, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colOne        = color.RGBA{120, 120, 120, 255}
	colMosquitto  = color.RGBA{170, 170, 170, 255}
	colMet        = color.RGBA{46, 160, 67, 255}
	colNotMet     = color.RGBA{215, 58, 73, 255}
	colNoTarget   = color.RGBA{3, 102, 214, 255}
	colText       = color.RGBA{20, 20, 20, 255}
)

// writeChart draws one bar pair per metric, normalised to mosquitto = 1:
// mosquitto's bar is always 1, edgegate's is the ratio of the medians,
// green when the target is met and red when not.
func writeChart(w io.Writer, rows []row, title string) error {
	const (
		left, right  = 70, 30
		top, bottom  = 110, 80
		groupW       = 116
		barW, gap    = 38, 6
		plotH        = 330
		scaleCap     = 5.0
		labelScale   = 1
		legendBox    = 14
		valueLabelDy = 12
	)
	width := left + len(rows)*groupW + right
	height := top + plotH + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fillRect(img, 0, 0, width, height, colBackground)

	yMax := 1.0
	for _, r := range rows {
		if r.Ratio != nil {
			yMax = max(yMax, *r.Ratio)
		}
	}
	yMax = min(math.Ceil(yMax*1.15*2)/2, scaleCap)
	step := 0.5
	if yMax > 3 {
		step = 1
	}
	y := func(v float64) int { return top + plotH - int(math.Round(min(v, yMax)/yMax*plotH)) }

	drawText(img, left, 14, title, 2, colText)
	fillRect(img, left, 46, legendBox, legendBox, colMosquitto)
	drawText(img, left+legendBox+6, 50, "mosquitto = 1", 1, colText)
	lx := left + 130
	for _, l := range []struct {
		c    color.Color
		text string
	}{{colMet, "edgegate, target met"}, {colNotMet, "edgegate, target not met"}, {colNoTarget, "edgegate, no verdict"}} {
		fillRect(img, lx, 46, legendBox, legendBox, l.c)
		drawText(img, lx+legendBox+6, 50, l.text, 1, colText)
		lx += legendBox + 6 + textWidth(l.text, 1) + 24
	}
	drawText(img, left, 72, "bar = edgegate median / mosquitto median, bars above 5 are clipped (value printed)", 1, colAxis)

	for v := 0.0; v <= yMax+1e-9; v += step {
		py := y(v)
		fillRect(img, left, py, width-left-right, 1, colGrid)
		label := strconv.FormatFloat(v, 'f', 1, 64)
		drawText(img, left-8-textWidth(label, 1), py-3, label, 1, colAxis)
	}
	fillRect(img, left, y(1), width-left-right, 2, colOne) // mosquitto = 1
	fillRect(img, left, top, 1, plotH+1, colAxis)
	fillRect(img, left, top+plotH, width-left-right, 1, colAxis)

	for i, r := range rows {
		gx := left + i*groupW + (groupW-2*barW-gap)/2
		fillRect(img, gx, y(1), barW, top+plotH-y(1), colMosquitto)
		bx := gx + barW + gap
		label := "n/a"
		if r.Ratio != nil {
			c := colNoTarget
			if r.Met != nil {
				c = map[bool]color.RGBA{true: colMet, false: colNotMet}[*r.Met]
			}
			by := y(*r.Ratio)
			fillRect(img, bx, by, barW, top+plotH-by, c)
			label = formatNum(*r.Ratio)
			if *r.Ratio > yMax {
				label += ">"
			}
		}
		ly := y(1) - valueLabelDy
		if r.Ratio != nil {
			ly = min(ly, y(*r.Ratio)-valueLabelDy)
		}
		drawText(img, bx+(barW-textWidth(label, labelScale))/2, max(ly, top-12), label, labelScale, colText)

		cx := left + i*groupW + groupW/2
		drawText(img, cx-textWidth(r.Short, 1)/2, top+plotH+10, r.Short, 1, colText)
		hint := "lower better"
		if r.Higher {
			hint = "higher better"
		}
		drawText(img, cx-textWidth(hint, 1)/2, top+plotH+24, hint, 1, colAxis)
		if r.Met != nil {
			verdict := map[bool]string{true: "met", false: "not met"}[*r.Met]
			drawText(img, cx-textWidth(verdict, 1)/2, top+plotH+38, verdict, 1, colAxis)
		}
	}
	return png.Encode(w, img)
}
